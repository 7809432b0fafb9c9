"""Presence across two daphne processes sharing Redis; a killed process's windows leave."""

import asyncio
import signal

import pytest

from tests.e2e.conftest import Browserless, open_ws

pytestmark = pytest.mark.e2e

CHAT = '"chat"'


async def online(window):
    reply = await window.call("fc.presence.list", topic=CHAT)
    return sorted((u["name"], len(u["windows"])) for u in reply["result"]["users"])


async def joined(window, window_ids, timeout=15):
    """Read ``window``'s frames until presence diffs have announced every one of ``window_ids``."""
    waiting = set(window_ids)

    def announces_the_last(frame):
        if frame.get("signal") == "fc.presence.diff":
            waiting.difference_update(entry["window"] for entry in frame["kwargs"]["joined"])
        return not waiting

    await window.until(announces_the_last, timeout)


async def left_names(window, timeout):
    """The names in fc.presence.diff 'left' lists that arrive within ``timeout`` seconds."""
    names = []
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            frame = await window.receive(timeout=deadline - asyncio.get_running_loop().time())
        except TimeoutError:
            break
        if frame.get("signal") == "fc.presence.diff":
            names += [entry["name"] for entry in frame["kwargs"]["left"]]
            if names:
                break
    return names


async def test_presence_across_processes_and_a_crash(redis, project_factory):
    project = project_factory(redis.url)
    project.env["PRESENCE_HEARTBEAT"] = "1"
    one, two = project.daphne(), project.daphne()
    alice = await open_ws(Browserless(one).login("alice", "alice-demo-pass"), presence=True)
    bob = await open_ws(Browserless(two).login("bob", "bob-demo-pass"), presence=True)
    bob_tab2 = await open_ws(Browserless(two).login("bob", "bob-demo-pass"), presence=True)
    # A window that joins and leaves within one flush is never announced: wait until alice
    # has been told of both of bob's windows (on the other process) before one leaves.
    await joined(alice, {bob.welcome["window_id"], bob_tab2.welcome["window_id"]})
    assert await online(alice) == [("alice", 1), ("bob", 2)]
    assert await online(bob) == [("alice", 1), ("bob", 2)]

    await bob_tab2.close()
    assert await left_names(alice, 5) == ["bob"]
    assert await online(alice) == [("alice", 1), ("bob", 1)]

    # The process holding bob's window dies without a goodbye.
    two.process.send_signal(signal.SIGKILL)
    two.process.wait(10)
    started = asyncio.get_running_loop().time()
    assert await left_names(alice, 6) == ["bob"]
    waited = asyncio.get_running_loop().time() - started
    assert waited < 4, waited  # within two heartbeats (plus the renewal that notices)
    assert await online(alice) == [("alice", 1)]
    await alice.close()
