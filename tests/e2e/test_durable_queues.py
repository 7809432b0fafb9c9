"""Durable queues with real processes: redis-server, daphne, ``manage.py runworker``.

The queued signal ``qt.count`` (tests/e2e/durable) records each start and each finished run
in Redis, so the tests count runs per call: exactly once, whatever the workers do.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
import redis as sync_redis

from tests.conftest import wait_until
from tests.e2e.conftest import Browserless, open_ws

pytestmark = pytest.mark.e2e

STREAM = "fc:q:count"
WORKER = "floorchannels.count"


@pytest.fixture
def store(redis):
    client = sync_redis.Redis.from_url(redis.url, decode_responses=True)
    for key in client.keys("fc:q:count*") + client.keys("durable:*"):
        client.delete(key)
    yield client
    client.close()


@pytest.fixture
def durable(redis, store, project_factory):
    def make(**env: str):
        project = project_factory(redis.url)
        project.env["DJANGO_SETTINGS_MODULE"] = "tests.e2e.durable.settings"
        project.env.update(env)
        return project

    return make


def started(store) -> list[dict]:
    return [json.loads(entry) for entry in store.lrange("durable:started", 0, -1)]


def done(store) -> dict[int, int]:
    return {int(n): int(runs) for n, runs in store.hgetall("durable:done").items()}


def workers_seen(store, count: int) -> None:
    wait_until(lambda: store.zcard(f"{STREAM}:workers") >= count, 30, f"{count} worker(s) to serve the queue")


def all_done(store, calls: int, timeout: float = 60) -> dict[int, int]:
    """Wait until every call ran and the queue is empty (nothing waiting or running)."""
    wait_until(
        lambda: len(done(store)) >= calls and store.xlen(STREAM) == 0, timeout, f"{calls} calls to run"
    )
    return done(store)


@pytest.mark.parametrize("layer", ["pubsub", "core"])
async def test_calls_queued_while_no_worker_runs_each_run_once_when_one_starts(durable, store, layer):
    project = durable(REDIS_LAYER=layer)
    server = project.daphne()
    browser = Browserless(server)
    # Four tabs, 25 calls each: within a window's burst allowance (RATE_LIMIT_BURST, 40).
    for tab in range(4):
        window = await open_ws(browser)
        for n in range(tab * 25, tab * 25 + 25):
            reply = await window.call("qt.count", n=n)
            assert reply["ok"] and reply["queued"] is True, reply
        await window.close()
    assert store.xlen(STREAM) == 100  # kept in Redis...
    assert started(store) == []  # ...and nothing ran them
    project.runworker(WORKER)
    assert all_done(store, 100) == {n: 1 for n in range(100)}
    assert sorted(entry["n"] for entry in started(store)) == list(range(100))


@pytest.mark.parametrize("layer", ["pubsub", "core"])
def test_two_workers_share_200_calls_and_run_each_once(durable, store, layer):
    project = durable(REDIS_LAYER=layer)
    one, two = project.runworker(WORKER), project.runworker(WORKER)
    workers_seen(store, 2)
    project.manage("durable_calls", "0", "200")
    assert all_done(store, 200) == {n: 1 for n in range(200)}
    runs = started(store)
    assert sorted(entry["n"] for entry in runs) == list(range(200))
    assert {entry["pid"] for entry in runs} == {one.pid, two.pid}  # both took calls


def test_a_worker_killed_mid_call_leaves_it_to_the_other(durable, store):
    project = durable(QUEUE_VISIBILITY_TIMEOUT="2")
    workers = {p.pid: p for p in (project.runworker(WORKER), project.runworker(WORKER))}
    workers_seen(store, 2)
    project.manage("durable_calls", "7", "1", "--hold")
    [first] = wait_until(lambda: started(store), 30, "the call to start")
    killed_at = time.monotonic()
    workers[first["pid"]].send_signal(signal.SIGKILL)
    workers[first["pid"]].wait(10)
    second = wait_until(lambda: started(store)[1:], 30, "the call to start again")[0]
    assert time.monotonic() - killed_at < 20  # the visibility timeout, not hours
    [other] = set(workers) - {first["pid"]}
    assert (second["n"], second["pid"], second["attempt"], second["id"]) == (7, other, 2, first["id"])
    store.rpush("durable:go:7", 1)
    assert all_done(store, 1) == {7: 1}
    assert len(started(store)) == 2


def test_a_delayed_call_survives_the_scheduler_and_the_worker(durable, store):
    """Scheduled by a process that exits at once, while a worker runs; that worker stops
    before the eta and another starts: the call runs once, not before its eta."""
    project = durable()
    first = project.runworker(WORKER)
    workers_seen(store, 1)
    scheduled = time.time()
    project.manage("durable_calls", "500", "1", "--countdown", "3")
    assert store.zcard(f"{STREAM}:delayed") == 1
    first.terminate()
    assert first.wait(30) == -signal.SIGTERM
    assert started(store) == []
    project.runworker(WORKER)
    assert all_done(store, 1) == {500: 1}
    [run] = started(store)
    assert run["at"] >= scheduled + 3


def test_sigterm_lets_the_running_call_finish(durable, store):
    project = durable()
    worker = project.runworker(WORKER)
    workers_seen(store, 1)
    project.manage("durable_calls", "1", "1", "--hold")
    wait_until(lambda: started(store), 30, "the call to start")
    worker.terminate()
    # Within the grace (10 s) the worker waits for its call, and takes no other.
    project.manage("durable_calls", "2", "1")
    assert worker.poll() is None
    store.rpush("durable:go:1", 1)
    assert worker.wait(30) == -signal.SIGTERM
    assert done(store) == {1: 1}
    assert [entry["n"] for entry in started(store)] == [1]
    assert store.xlen(STREAM) == 1  # call 2 waits for the next worker
    assert store.zcard(f"{STREAM}:workers") == 0
