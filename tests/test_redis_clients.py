"""floorchannels' own Redis clients against a real redis-server: bounded pools, released
with their event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis as sync_redis
from django.test import override_settings

from floorchannels import metrics, presence
from floorchannels.history import RedisHistory
from floorchannels.redis_clients import redis_client
from tests.conftest import await_until
from tests.e2e.conftest import Redis

pytestmark = pytest.mark.e2e

BOUND = 8


@pytest.fixture
def server():
    """A redis-server of this test's own, so every connection counted is ours."""
    instance = Redis()
    yield instance
    instance.stop()


def clients(url: str) -> int:
    """Connections Redis holds, less the one asking."""
    with sync_redis.Redis.from_url(url) as client:
        return len(client.client_list()) - 1


async def test_a_storm_of_reads_and_presence_uses_at_most_the_pool(server):
    """1,000 windows reading their positions and joining presence at once (a reconnect
    storm): every answer arrives, and Redis never sees more connections than the pool."""
    history = RedisHistory(server.url)
    store = presence.RedisPresence(server.url)
    peak = 0
    stop = asyncio.Event()

    async def watch():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, await asyncio.to_thread(clients, server.url))
            await asyncio.sleep(0.01)

    with override_settings(FLOORCHANNELS={"REDIS_MAX_CONNECTIONS": BOUND}):
        watcher = asyncio.ensure_future(watch())
        positions = asyncio.gather(*(history.positions([f"window-{n}"]) for n in range(1000)))
        since = asyncio.gather(*(history.since(f"window-{n}", "e", 0) for n in range(1000)))
        joins = asyncio.gather(
            *(store.add("room", [presence._member(f"w{n}", None, "")], 1e12) for n in range(1000))
        )
        answers, replays, _ = await asyncio.gather(positions, since, joins)
        stop.set()
        await watcher
    assert len(answers) == 1000 and all(p == {f"window-{n}": 0} for n, (_, p) in enumerate(answers))
    assert len(replays) == 1000
    assert await store.count("room", 0) == 1000
    assert 0 < peak <= BOUND, peak
    assert clients(server.url) <= BOUND


async def test_a_command_that_waits_too_long_for_a_connection_fails_and_is_counted(server):
    with override_settings(FLOORCHANNELS={"REDIS_MAX_CONNECTIONS": 1, "REDIS_POOL_TIMEOUT": 0.2}):
        client = redis_client(server.url)
        # Blocks far longer than the test takes, however loaded the machine: cancelled below.
        blocking = asyncio.ensure_future(client.blpop(["nothing-comes"], timeout=60))
        await await_until(
            lambda: clients(server.url) >= 1, what="the blocking command to take the connection"
        )
        with pytest.raises(sync_redis.exceptions.ConnectionError):
            await client.get("anything")
        assert metrics.snapshot().get("redis_pool_timeouts") == 1
        blocking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocking


def test_a_closed_loop_closes_its_clients(server):
    """asyncio.run (and async_to_sync) close their loop: its clients go with it."""

    async def use():
        assert await redis_client(server.url).ping()
        assert await redis_client(server.url, decode_responses=True).ping()
        return clients(server.url)

    assert [asyncio.run(use()) for _ in range(20)] == [2] * 20  # open while the loop runs
    assert clients(server.url) == 0


def test_threads_each_with_their_own_loop_leave_nothing_open(server):
    pongs = []

    async def ping():
        pongs.append(await redis_client(server.url).ping())

    def worker():
        for _ in range(10):
            asyncio.run(ping())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pongs == [True] * 80
    assert clients(server.url) == 0
