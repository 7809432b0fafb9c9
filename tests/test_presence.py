"""Presence as windows see it: the list, join/leave diffs, counts, who may ask."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from floorchannels import presence, window_key
from tests.conftest import await_until, frames_before_marker, make_key, open_window, session_headers

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = '"chat"'


async def signed_in_window(user, **grants):
    from types import SimpleNamespace

    headers = await sync_to_async(session_headers)(user)
    return await open_window(window_key(SimpleNamespace(user=user), **grants), headers)


def diffs_sent() -> bool:
    """No join or leave of this process waits in a batch or in a flush still sending it."""
    renewers = set(presence._renewers.values())
    flushing = [task for task in presence._tasks if task not in renewers and not task.done()]
    return not presence._pending.get(asyncio.get_running_loop()) and not flushing


async def diffs(window, entries):
    """The presence diffs ``window`` receives: until they list ``entries`` joins and leaves,
    then any more that were on their way (read up to a marker sent after every pending diff)."""
    frames, window.skipped = window.skipped, []
    found = [f["kwargs"] for f in frames if f.get("signal") == "fc.presence.diff"]
    while sum(len(d["joined"]) + len(d["left"]) for d in found) < entries:
        frame = await window.receive(timeout=5)
        if frame.get("signal") == "fc.presence.diff":
            found.append(frame["kwargs"])
    await await_until(diffs_sent, what="the pending presence diffs to be sent")
    [more] = await frames_before_marker(window)  # the marker goes out after any diff still due
    return found + [f["kwargs"] for f in more if f.get("signal") == "fc.presence.diff"]


@pytest.fixture
def users(db):
    return [User.objects.create_user(name, password="x") for name in ("alice", "bob")]


async def test_list_joins_and_leaves(users):
    alice, bob = users
    a1 = await signed_in_window(alice, presence=["chat"])
    assert [d["joined"][0]["name"] for d in await diffs(a1, 1)] == ["alice"]  # its own join
    a2 = await signed_in_window(alice, presence=["chat"])
    b1 = await signed_in_window(bob, presence=["chat"])
    joined = sorted(entry["name"] for d in await diffs(a1, 2) for entry in d["joined"])
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
    left = await diffs(a1, 1)
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
    await diffs(watcher, 1)
    crowd = [await open_window(make_key(presence=["storm"])) for _ in range(20)]
    received = await diffs(watcher, 20)
    assert sum(len(d["joined"]) for d in received) == 20
    assert len(received) < 20, f"{len(received)} diffs for 20 joins"
    for window in crowd:
        await window.close()
    left = await diffs(watcher, 20)
    assert sum(len(d["left"]) for d in left) == 20
    await watcher.close()


async def test_windows_that_come_and_go_leave_nothing_behind():
    """A thousand pages each present in a topic of their own: once they have gone, the
    process holds no topic, no pending diff and no stored entry for any of them."""
    loop = asyncio.get_running_loop()
    for round_ in range(5):
        windows = [await open_window(make_key(presence=[f"doc-{round_}-{n}"])) for n in range(20)]
        assert len(presence._local[loop]) == 20
        for window in windows:
            await window.close()
        await await_until(lambda: not presence._local.get(loop) and not presence._pending.get(loop))
        await await_until(lambda: not presence.store().topics)
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
        received = await diffs(watcher, 6)  # within 5 s: no waiting for the 60 s delay
        assert [len(d["joined"]) for d in received] == [3, 3]
        for window in [watcher, *crowd]:
            await window.close()
