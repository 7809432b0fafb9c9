"""Several processes sharing groups through a real Redis: daphne, manage.py, runworker."""

import itertools
import json

import pytest
from asgiref.sync import sync_to_async

from tests.e2e.conftest import Browserless, open_ws

pytestmark = pytest.mark.e2e


def user_pk(project, username):
    out = project.manage(
        "shell",
        "-c",
        f"from django.contrib.auth.models import User; print(User.objects.get(username='{username}').pk)",
    )
    return out.strip().splitlines()[-1]


async def test_command_in_another_process_reaches_windows_on_two_daphnes(redis, project_factory):
    project = project_factory(redis.url)
    one, two = project.daphne(), project.daphne()
    alice = Browserless(one).login("alice", "alice-demo-pass")
    bob = Browserless(two).login("bob", "bob-demo-pass")
    anonymous = Browserless(two)
    a1 = await open_ws(alice)
    a2 = await open_ws(alice, two)  # alice's second tab lands on the other daphne
    b1 = await open_ws(bob)
    n1 = await open_ws(anonymous)
    windows = {"a1": a1, "a2": a2, "b1": b1, "n1": n1}
    # Marks the end of each step: a broadcast sent (from daphne one) after the step's messages,
    # so every window has received whatever the step sent it once the marker is in.
    marker = await open_ws(anonymous, one)
    markers = itertools.count()

    async def received():
        text = f"marker {next(markers)}"
        assert (await marker.call("demo.chat", text=text))["ok"]
        got = {}
        for name, window in windows.items():
            frames = await window.until(lambda f: f.get("kwargs", {}).get("text") == text)
            got[name] = [f["kwargs"] for f in frames if f["type"] == "signal"]
        return got

    async def run(*args):
        await sync_to_async(project.manage)("floorchannels_call", *args)
        return await received()

    everyone = await run("chat.message", "--broadcast", "--kwargs", json.dumps({"text": "to all"}))
    assert everyone == {name: [{"text": "to all"}] for name in windows}

    alice_pk = await sync_to_async(user_pk)(project, "alice")
    only_alice = await run("chat.message", "--user", alice_pk, "--kwargs", '{"text": "alice"}')
    assert only_alice == {"a1": [{"text": "alice"}], "a2": [{"text": "alice"}], "b1": [], "n1": []}

    # One copy per window even when reached through USER and BROADCAST at once.
    both = await run("chat.message", "--user", alice_pk, "--broadcast", "--kwargs", '{"text": "once"}')
    assert both == {name: [{"text": "once"}] for name in windows}

    # A browser call on one daphne broadcasts to windows on the other.
    reply = await b1.call("demo.chat", text="hello from bob")
    assert reply["ok"]
    assert await received() == {name: [{"author": "bob", "text": "hello from bob"}] for name in windows}
    for window in [*windows.values(), marker]:
        await window.close()


async def test_runworker_runs_queued_signal_and_progress_reaches_the_window(redis, project_factory):
    project = project_factory(redis.url)
    server = project.daphne()
    project.runworker("floorchannels.slow")
    window = await open_ws(Browserless(server))
    reply = await window.call("demo.progress", steps=3, delay=0.05)
    assert reply["ok"] and reply["queued"] is True
    frames = [await window.receive(10) for _ in range(3)]
    assert [(f["signal"], f["kwargs"]) for f in frames] == [
        ("demo.progress", {"done": n, "total": 3}) for n in (1, 2, 3)
    ]
    await window.close()


async def test_sample_page_in_memory_mode_says_hello_and_answers(project_factory):
    """`make run` without REDIS_URL: one process, in-memory layer, queues run in-process."""
    project = project_factory()
    server = project.daphne()
    window = await open_ws(Browserless(server).login("alice", "alice-demo-pass"))
    assert (await window.call("demo.add", a=2, b=3))["result"] == 5
    assert (await window.call("demo.staff_only"))["error"]["code"] == "forbidden"
    reply = await window.call("demo.progress", steps=2, delay=0)
    assert reply["queued"]
    frames = [await window.receive() for _ in range(2)]
    assert [f["kwargs"]["done"] for f in frames] == [1, 2]
    await window.close()
