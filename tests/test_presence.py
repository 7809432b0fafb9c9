"""Presence as windows see it: the list, join/leave diffs, counts, who may ask."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from floorchannels import presence, window_key
from tests.conftest import make_key, open_window, session_headers

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = '"chat"'


async def signed_in_window(user, **grants):
    from types import SimpleNamespace

    headers = await sync_to_async(session_headers)(user)
    return await open_window(window_key(SimpleNamespace(user=user), **grants), headers)


async def diffs(window, quiet=0.3):
    frames, window.skipped = window.skipped, []
    while not await window.ws.receive_nothing(timeout=quiet):
        frames.append(await window.receive())
    return [f["kwargs"] for f in frames if f.get("signal") == "fc.presence.diff"]


@pytest.fixture
def users(db):
    return [User.objects.create_user(name, password="x") for name in ("alice", "bob")]


async def test_list_joins_and_leaves(users):
    alice, bob = users
    a1 = await signed_in_window(alice, presence=["chat"])
    assert [d["joined"][0]["name"] for d in await diffs(a1)] == ["alice"]  # its own join
    a2 = await signed_in_window(alice, presence=["chat"])
    b1 = await signed_in_window(bob, presence=["chat"])
    joined = sorted(entry["name"] for d in await diffs(a1) for entry in d["joined"])
    assert joined == ["alice", "bob"]

    reply = await a1.call("fc.presence.list", topic=CHAT)
    result = reply["result"]
    assert result["count"] == 3
    assert [(u["name"], len(u["windows"])) for u in result["users"]] == [("alice", 2), ("bob", 1)]
    assert (await b1.call("fc.presence.list", topic=CHAT, count_only=True))["result"] == {
        "topic": CHAT,
        "count": 3,
    }

    await b1.close()
    left = await diffs(a1)
    assert [d["left"][0]["name"] for d in left] == ["bob"]
    assert left[0]["left"][0]["window"] == b1.welcome["window_id"]
    assert await presence.acount("chat") == 2
    await a1.close()
    await a2.close()


async def test_topic_without_presence_lists_nobody_and_others_may_not_ask(users):
    alice, _ = users
    listener = await signed_in_window(alice, topics=["chat"])  # receives the topic, not listed
    shown = await signed_in_window(alice, presence=["chat"])
    assert (await listener.call("fc.presence.list", topic=CHAT))["result"]["count"] == 1
    stranger = await open_window(make_key(topics=["elsewhere"]))
    assert (await stranger.call("fc.presence.list", topic=CHAT))["error"]["code"] == "forbidden"
    for window in (listener, shown, stranger):
        await window.close()


async def test_anonymous_windows_are_listed_each_on_their_own():
    first = await open_window(make_key(presence=["lobby"]))
    second = await open_window(make_key(presence=["lobby"]))
    users = await presence.alist("lobby")
    assert [(u["user"], len(u["windows"])) for u in users] == [(None, 1), (None, 1)]
    await first.close()
    await second.close()


async def test_a_join_storm_is_batched_into_few_diffs():
    watcher = await open_window(make_key(presence=["storm"]))
    await diffs(watcher)
    crowd = [await open_window(make_key(presence=["storm"])) for _ in range(20)]
    received = await diffs(watcher, quiet=0.5)
    assert sum(len(d["joined"]) for d in received) == 20
    assert len(received) < 20, f"{len(received)} diffs for 20 joins"
    for window in crowd:
        await window.close()
    left = await diffs(watcher, quiet=0.5)
    assert sum(len(d["left"]) for d in left) == 20
    await watcher.close()


async def wait_until(predicate, timeout=5.0):
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_windows_that_come_and_go_leave_nothing_behind():
    """A thousand pages each present in a topic of their own: once they have gone, the
    process holds no topic, no pending diff and no stored entry for any of them."""
    import asyncio

    loop = asyncio.get_running_loop()
    for round_ in range(5):
        windows = [await open_window(make_key(presence=[f"doc-{round_}-{n}"])) for n in range(20)]
        assert len(presence._local[loop]) == 20
        for window in windows:
            await window.close()
        await wait_until(lambda: not presence._local.get(loop) and not presence._pending.get(loop))
        await wait_until(lambda: not presence.store().topics)
    assert len(presence._renewers) == 1  # one per event loop, not per window
    assert all(not task.done() for task in presence._tasks)  # finished flushes were let go


async def test_a_full_diff_goes_out_at_once(monkeypatch):
    """A pending diff never grows past MAX_DIFF_ENTRIES: a full one is sent without
    waiting for the batching delay."""
    from django.test import override_settings

    monkeypatch.setattr(presence, "MAX_DIFF_ENTRIES", 3)
    with override_settings(FLOORCHANNELS={"PRESENCE_DIFF_DELAY": 60}):
        watcher = await open_window(make_key(presence=["full"]))
        crowd = [await open_window(make_key(presence=["full"])) for _ in range(5)]
        received = await diffs(watcher, quiet=1.0)  # long before the 60 s delay
        assert [len(d["joined"]) for d in received] == [3, 3]
        for window in [watcher, *crowd]:
            await window.close()
