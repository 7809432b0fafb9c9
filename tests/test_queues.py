"""Durable queues on a real redis-server: each call kept until a worker ran it, once.

The workers here are :class:`floorchannels.queues.QueueWorker` loops in the test's own event
loop; tests/e2e/test_durable_queues.py runs them as ``manage.py runworker`` processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from io import StringIO

import pytest
import redis as sync_redis
from django.core.management import call_command
from django.test import override_settings

from floorchannels import SERVER, acall, metrics, queues
from floorchannels.dispatch import PublishError, enqueue
from floorchannels.registry import registry, signal
from floorchannels.windows import WindowInfo
from floorchannels.worker import start_for_runworker
from tests.conftest import await_until
from tests.e2e.conftest import Redis, free_port

QUEUE = "durable"

#: (signal, n, QueuedCall) for every run, in order.
runs: list = []
gates: dict[str, asyncio.Event] = {}


@signal("q.record", queue=QUEUE)
def record(window, n: int = 0):
    """Sync, like most slow work: the call id reaches it through the thread."""
    runs.append(("record", n, queues.current_call()))


@signal("q.hold", queue=QUEUE)
async def hold(window, name: str):
    runs.append(("hold", name, queues.current_call()))
    await gates.setdefault(name, asyncio.Event()).wait()


@signal("q.fail", queue=QUEUE)
def fail(window):
    runs.append(("fail", 0, queues.current_call()))
    raise RuntimeError("the handler failed")


@pytest.fixture(scope="module")
def redis_server():
    server = Redis()
    yield server
    server.stop()


def settings_for(url: str, **options):
    return override_settings(
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [url]},
            }
        },
        FLOORCHANNELS={"QUEUE_VISIBILITY_TIMEOUT": 0.5, **options},
    )


@pytest.fixture
def url(redis_server):
    with sync_redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    runs.clear()
    gates.clear()
    queues._warned.clear()
    with settings_for(redis_server.url):
        yield redis_server.url


@pytest.fixture
def raw(url):
    with sync_redis.Redis.from_url(url, decode_responses=True) as client:
        yield client


@asynccontextmanager
async def worker():
    """A worker on QUEUE for the block; stopped gracefully (1 s) at its end."""
    instance = queues.QueueWorker(QUEUE)
    task = asyncio.ensure_future(instance.run())
    try:
        yield instance
    finally:
        await instance.stop(1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_calls_wait_for_a_worker_and_each_runs_once(url):
    """Nothing runs a call while no worker serves the queue; the worker that starts runs each
    call once, with its id, and leaves the queue empty."""
    ids = [await acall("q.record", SERVER, kwargs={"n": n}) for n in range(20)]
    assert (await queues.stats(QUEUE))["waiting"] == 20
    assert runs == []
    async with worker():
        await await_until(lambda: len(runs) >= 20, 20, "20 runs")
        await await_until(lambda: metrics.snapshot().get("queue_runs", 0) >= 20, 10, "20 acknowledgements")
    assert sorted(n for _, n, _ in runs) == list(range(20))
    assert [call.id for _, _, call in runs] == ids  # in order, one at a time
    assert {call.attempt for _, _, call in runs} == {1}
    stats = await queues.stats(QUEUE)
    assert (stats["waiting"], stats["running"], stats["delayed"], stats["dead"]) == (0, 0, 0, 0)


async def test_two_workers_share_a_queue_without_running_a_call_twice(url):
    for n in range(60):
        await acall("q.record", SERVER, kwargs={"n": n})
    async with worker() as one, worker() as two:
        await await_until(lambda: len(runs) >= 60, 30, "60 runs")
        assert one.consumer != two.consumer
    assert sorted(n for _, n, _ in runs) == list(range(60))


async def test_a_call_whose_worker_died_runs_again_on_another(url, raw):
    """A worker takes a call and dies (never acknowledges, never renews its claim): after the
    visibility timeout another worker runs it, as attempt 2."""
    await acall("q.record", SERVER, kwargs={"n": 7})
    raw.xgroup_create(queues.stream_key(QUEUE), queues.GROUP, id="0")
    taken = raw.xreadgroup(queues.GROUP, "dead-worker", {queues.stream_key(QUEUE): ">"}, count=1)
    assert taken, "the dead worker took the call"
    started = time.monotonic()
    async with worker():
        await await_until(lambda: runs, 10, "the re-run")
    assert time.monotonic() - started >= 0.3  # not before the visibility timeout (0.5 s from the take)
    [(_, n, call)] = runs
    assert (n, call.attempt) == (7, 2)
    assert metrics.snapshot()["queue_reruns"] == 1
    assert (await queues.stats(QUEUE))["running"] == 0


async def test_a_running_call_keeps_its_claim_past_the_visibility_timeout(url, raw):
    """A call that runs longer than the visibility timeout is not taken by another worker:
    its worker renews the claim while it runs."""
    with override_settings(FLOORCHANNELS={"QUEUE_VISIBILITY_TIMEOUT": 1.0}):
        await acall("q.hold", SERVER, kwargs={"name": "long"})
        async with worker() as first:
            await await_until(lambda: runs, 10, "the call to start")
            async with worker():

                def held_by_first() -> bool:
                    [pending] = raw.xpending_range(queues.stream_key(QUEUE), queues.GROUP, "-", "+", 10)
                    assert pending["consumer"] == first.consumer
                    assert pending["times_delivered"] == 1
                    return first.renewals >= 9  # three visibility timeouts (renewed every third)

                # Meanwhile the second worker looks for stale calls at every turn of its loop.
                await await_until(lambda: asyncio.to_thread(held_by_first), 30, "three timeouts")
                gates["long"].set()
                await await_until(lambda: metrics.snapshot().get("queue_runs"), 10, "the call to finish")
    assert len(runs) == 1
    assert metrics.snapshot().get("queue_reruns", 0) == 0


async def test_a_call_that_keeps_killing_its_worker_goes_to_the_dead_letters(url, raw, caplog):
    await acall("q.record", SERVER, kwargs={"n": 1})
    stream = queues.stream_key(QUEUE)
    raw.xgroup_create(stream, queues.GROUP, id="0")
    [[_, [(entry, _fields)]]] = raw.xreadgroup(queues.GROUP, "w1", {stream: ">"}, count=1)
    for n in range(2, 4):  # delivered twice more, each time to a worker that dies
        raw.xclaim(stream, queues.GROUP, f"w{n}", 0, [entry])
    with override_settings(FLOORCHANNELS={"QUEUE_VISIBILITY_TIMEOUT": 0.2, "QUEUE_MAX_ATTEMPTS": 3}):
        async with worker():
            await await_until(lambda: metrics.snapshot().get("queue_dead_lettered"), 10, "the dead letter")
    assert runs == []
    [(_, dead)] = raw.xrange(f"{stream}:dead")
    assert json.loads(dead["m"])["kwargs"] == {"n": 1}
    assert dead["deliveries"] == "3" and dead["worker"] == "w3" and "QUEUE_MAX_ATTEMPTS" in dead["reason"]
    assert (await queues.stats(QUEUE))["dead"] == 1
    assert any("dead letters" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_a_failing_handler_is_counted_and_not_run_again(url):
    await acall("q.fail", SERVER)
    await acall("q.record", SERVER, kwargs={"n": 2})
    async with worker():
        await await_until(lambda: len(runs) >= 2, 10, "both calls")
        await await_until(lambda: metrics.snapshot().get("queue_runs", 0) >= 2, 10, "both acknowledged")
    assert [name for name, _, _ in runs] == ["fail", "record"]
    assert metrics.snapshot()["queue_failures"] == 1
    assert (await queues.stats(QUEUE))["waiting"] == 0


async def test_a_delayed_call_waits_in_redis_until_its_eta(url):
    eta = time.time() + 1.0
    await acall("q.record", SERVER, kwargs={"n": 3}, eta=eta)
    stats = await queues.stats(QUEUE)
    assert (stats["delayed"], stats["waiting"]) == (1, 0)
    async with worker():
        await await_until(lambda: runs, 10, "the delayed call")
        ran_at = time.time()
    assert ran_at >= eta
    assert (await queues.stats(QUEUE))["delayed"] == 0


async def test_a_call_due_before_the_one_a_worker_waits_for_runs_first(url):
    await acall("q.record", SERVER, kwargs={"n": 60}, countdown=60)
    async with worker():
        await await_until(lambda: metrics.snapshot().get(f"queue_workers_{QUEUE}"), 10, "the worker")
        await acall("q.record", SERVER, kwargs={"n": 1}, countdown=0.2)
        await await_until(lambda: runs, 10, "the call due first")
    assert [n for _, n, _ in runs] == [1]
    assert (await queues.stats(QUEUE))["delayed"] == 1


async def test_an_expired_call_is_dropped_not_run(url):
    await acall("q.record", SERVER, kwargs={"n": 4}, countdown=0.2, expires=0.01)
    await acall("q.record", SERVER, kwargs={"n": 5}, countdown=0.3)
    async with worker():
        await await_until(lambda: runs, 10, "the call that had not expired")
        await await_until(lambda: metrics.snapshot().get("expired"), 10, "the expired one to be counted")
    assert [n for _, n, _ in runs] == [5]


async def test_a_full_queue_refuses_calls_and_says_so(url):
    with override_settings(FLOORCHANNELS={"QUEUE_MAX_LENGTH": 2}):
        await acall("q.record", SERVER)
        await acall("q.record", SERVER, countdown=60)  # delayed calls count too
        with pytest.raises(PublishError, match="QUEUE_MAX_LENGTH"):
            await acall("q.record", SERVER)
    assert metrics.snapshot()["queue_full"] == 1
    stats = await queues.stats(QUEUE)
    assert (stats["waiting"], stats["delayed"]) == (1, 1)


async def test_redis_down_means_publish_error_and_nothing_queued():
    with settings_for(f"redis://127.0.0.1:{free_port()}/0"):
        with pytest.raises(PublishError, match="Could not queue"):
            await enqueue(QUEUE, "q.record", WindowInfo(window_id="w"), {}, "w:1")
    assert metrics.snapshot()["publish_errors"] == 1


async def test_a_call_queued_while_no_worker_runs_is_kept_with_a_warning(url, caplog):
    await acall("q.record", SERVER)
    await acall("q.record", SERVER)
    warnings = [
        r for r in caplog.records if r.name == "floorchannels.queues" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1 and "no worker" in warnings[0].getMessage()
    assert metrics.snapshot()["queue_no_worker"] == 2
    async with worker():
        await await_until(lambda: metrics.snapshot().get(f"queue_workers_{QUEUE}") == 1, 10, "the gauge")
        await await_until(lambda: len(runs) == 2, 10, "both calls")
        caplog.clear()
        await acall("q.record", SERVER)
        await await_until(lambda: len(runs) == 3, 10, "the third call")
    assert metrics.snapshot()["queue_no_worker"] == 2  # a worker was seen this time
    assert not [
        r for r in caplog.records if r.name == "floorchannels.queues" and r.levelno >= logging.WARNING
    ]


async def test_stats_and_gauges_show_what_waits(url):
    for n in range(3):
        await acall("q.record", SERVER, kwargs={"n": n})
    await acall("q.record", SERVER, countdown=60)
    stats = await queues.stats(QUEUE)
    assert stats["waiting"] == 3 and stats["delayed"] == 1 and stats["workers"] == 0
    assert 0 <= stats["oldest_seconds"] < 60
    async with worker():
        await await_until(lambda: len(runs) == 3, 10, "the three calls")
        queues._publish_gauges(await queues.stats(QUEUE))
        snapshot = metrics.snapshot()
    assert snapshot[f"queue_waiting_{QUEUE}"] == 0
    assert snapshot[f"queue_delayed_{QUEUE}"] == 1
    assert snapshot[f"queue_workers_{QUEUE}"] == 1


async def test_a_graceful_stop_finishes_the_running_call(url):
    await acall("q.hold", SERVER, kwargs={"name": "short"})
    await acall("q.record", SERVER, kwargs={"n": 9})
    instance = queues.QueueWorker(QUEUE)
    task = asyncio.ensure_future(instance.run())
    await await_until(lambda: runs, 10, "the held call to start")
    asyncio.get_running_loop().call_later(0.2, gates["short"].set)
    await instance.stop(10)
    task.cancel()
    assert [name for name, _, _ in runs] == ["hold"]  # the next call was not taken
    stats = await queues.stats(QUEUE)
    assert (stats["waiting"], stats["running"]) == (1, 0)
    assert metrics.snapshot().get("queue_released", 0) == 0


async def test_a_call_still_running_after_the_grace_is_handed_to_another_worker_at_once(url):
    with override_settings(FLOORCHANNELS={"QUEUE_VISIBILITY_TIMEOUT": 30}):
        await acall("q.hold", SERVER, kwargs={"name": "stuck"})
        instance = queues.QueueWorker(QUEUE)
        task = asyncio.ensure_future(instance.run())
        await await_until(lambda: runs, 10, "the call to start")
        await instance.stop(0.1)
        task.cancel()
        assert metrics.snapshot()["queue_released"] == 1
        # Not 30 s later: handed back as if its worker had died long ago.
        async with worker():
            await await_until(lambda: len(runs) == 2, 10, "the re-run")
            gates["stuck"].set()
    assert [call.attempt for _, _, call in runs] == [1, 2]


def test_runworker_arguments_name_the_queues(url):
    assert queues.queues_from_channels(
        ["floorchannels.slow", "other", "floorchannels.", "floorchannels.a"]
    ) == [
        "slow",
        "a",
    ]
    # Not a runworker process: nothing starts.
    assert start_for_runworker(["manage.py", "migrate"]) is None


async def test_the_in_memory_layer_keeps_queues_in_the_web_process():
    assert not queues.durable() and queues.in_process()
    assert QUEUE in registry.queues()


def run_check():
    from floorchannels.checks import check_queue_workers

    return check_queue_workers()


async def test_the_check_names_queues_no_worker_serves(url, monkeypatch):
    monkeypatch.setattr("sys.argv", ["manage.py", "check"])
    await acall("q.record", SERVER)
    problems = await asyncio.to_thread(run_check)
    mine = [p for p in problems if f"queue {QUEUE!r}" in p.msg]
    assert [p.id for p in mine] == ["floorchannels.W008"]
    assert "1 call(s) wait" in mine[0].msg and f"runworker floorchannels.{QUEUE}" in mine[0].hint
    async with worker():
        await await_until(lambda: runs, 10, "the call")
        problems = await asyncio.to_thread(run_check)
    assert not [p for p in problems if f"queue {QUEUE!r}" in p.msg]
    # runworker is about to serve the queues it names: no warning there.
    monkeypatch.setattr("sys.argv", ["manage.py", "runworker", f"floorchannels.{QUEUE}"])
    with override_settings(FLOORCHANNELS={"QUEUE_WORKER_TIMEOUT": 0}):
        assert await asyncio.to_thread(run_check) == []


def test_the_check_says_when_redis_cannot_be_asked(monkeypatch):
    monkeypatch.setattr("sys.argv", ["manage.py", "check"])
    with settings_for(f"redis://127.0.0.1:{free_port()}/0"):
        assert [p.id for p in run_check()] == ["floorchannels.W009"]


def test_the_check_is_silent_with_the_in_memory_layer():
    assert run_check() == []


def test_the_command_shows_each_queue(url):
    with sync_redis.Redis.from_url(url) as client:
        client.xadd(queues.stream_key(QUEUE), {"m": "{}"})
    out = StringIO()
    call_command("floorchannels_queues", QUEUE, "--json", stdout=out)
    row = json.loads(out.getvalue())
    assert (row["queue"], row["waiting"], row["running"], row["workers"]) == (QUEUE, 1, 0, 0)
    out = StringIO()
    call_command("floorchannels_queues", QUEUE, stdout=out)
    assert out.getvalue().startswith(f"{QUEUE}: 1 waiting, 0 running, 0 delayed, 0 dead; oldest ")


async def test_a_worker_goes_on_when_redis_loses_its_stream(url, raw, caplog):
    """Redis restarted without persistence (here: flushed): the worker says what was lost and
    serves the calls queued from then on."""
    async with worker():
        await acall("q.record", SERVER, kwargs={"n": 1})
        await await_until(lambda: runs, 10, "the first call")
        await asyncio.to_thread(raw.flushdb)
        await acall("q.record", SERVER, kwargs={"n": 2})
        await await_until(lambda: len(runs) == 2, 10, "the call queued after the flush")
    assert [n for _, n, _ in runs] == [1, 2]
    assert any("lost its stream" in r.getMessage() for r in caplog.records)


async def test_calls_this_worker_cannot_run_are_kept_in_the_dead_letters(url, raw):
    """A call of a signal this worker has no handler for, or one it cannot read (queued by a
    newer release during a rolling deploy), is kept with its reason, not dropped."""
    stream = queues.stream_key(QUEUE)
    unknown = {
        "type": "fc.run",
        "v": 1,
        "id": "x:1",
        "queue": QUEUE,
        "signal": "q.nobody",
        "kwargs": {},
        "window": {},
    }
    raw.xadd(stream, {"m": json.dumps(unknown)})
    raw.xadd(stream, {"m": json.dumps({**unknown, "v": 99})})
    async with worker():
        await await_until(lambda: metrics.snapshot().get("queue_dead_lettered") == 2, 10, "two dead letters")
    dead = [fields for _, fields in raw.xrange(f"{stream}:dead")]
    assert [json.loads(d["m"])["v"] for d in dead] == [1, 99]
    assert "no handler" in dead[0]["reason"] and "cannot read" in dead[1]["reason"]
    assert raw.xlen(stream) == 0
    # Once a handler exists (here: the call is fixed by hand), the command queues them again.
    raw.xadd(f"{stream}:dead", {"m": json.dumps({**unknown, "signal": "q.record"}), "reason": "x"})
    out = StringIO()
    await asyncio.to_thread(call_command, "floorchannels_queues", QUEUE, "--retry-dead", stdout=out)
    assert out.getvalue() == f"{QUEUE}: 3 dead letter(s) queued again\n"
    assert raw.xlen(f"{stream}:dead") == 0 and raw.xlen(stream) == 3
    async with worker():
        await await_until(lambda: runs, 10, "the fixed call")
        await await_until(lambda: metrics.snapshot().get("queue_dead_lettered") == 4, 10, "the others again")
    assert [(name, call.id) for name, _, call in runs] == [("record", "x:1")]


async def test_a_worker_that_lost_its_call_to_another_leaves_it_to_that_one(url, raw, caplog):
    """A worker too slow to renew its claim (its loop stalled) finds the call taken over when
    it finishes: it leaves the acknowledgement to the worker running it again, and says so."""
    await acall("q.hold", SERVER, kwargs={"name": "slow"})
    stream = queues.stream_key(QUEUE)
    async with worker():
        await await_until(lambda: runs, 10, "the call to start")
        [pending] = raw.xpending_range(stream, queues.GROUP, "-", "+", 1)
        raw.xclaim(stream, queues.GROUP, "other-worker", 0, [pending["message_id"]])
        gates["slow"].set()
        await await_until(lambda: metrics.snapshot().get("queue_runs"), 10, "the run to end")
    [still] = raw.xpending_range(stream, queues.GROUP, "-", "+", 1)
    assert still["consumer"] == "other-worker" and raw.xlen(stream) == 1
    assert any("ran twice" in r.getMessage() for r in caplog.records)


def test_queue_gauges_are_prometheus_gauges():
    queues._publish_gauges(
        {"queue": QUEUE, "waiting": 2, "running": 1, "delayed": 4, "oldest_seconds": 1.5, "workers": 0}
    )
    families = {f.name: f for f in metrics.PrometheusCollector().collect()}
    assert families[f"floorchannels_queue_waiting_{QUEUE}"].type == "gauge"
    assert families[f"floorchannels_queue_waiting_{QUEUE}"].samples[0].value == 3
    assert families[f"floorchannels_queue_oldest_seconds_{QUEUE}"].samples[0].value == 1.5
    assert families["floorchannels_connections_open"].type == "gauge"


async def test_web_processes_running_queues_themselves_on_redis_keep_them_durable(redis_server):
    """RUN_QUEUES_IN_PROCESS on a Redis layer: each web process's hub is one more worker of
    the Redis stream, so a call still runs once (not once per process) and is kept meanwhile."""
    from floorchannels.hub import Hub
    from floorchannels.layers import channel_layer

    with sync_redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    runs.clear()
    with settings_for(redis_server.url, RUN_QUEUES_IN_PROCESS=True):
        assert queues.durable() and queues.in_process()
        await acall("q.record", SERVER, kwargs={"n": 7})
        assert (await queues.stats(QUEUE))["waiting"] == 1  # kept in Redis until a hub serves it
        hubs = [Hub(channel_layer()), Hub(channel_layer())]  # two web processes' hubs
        try:
            for hub in hubs:
                await hub._start()
            await await_until(lambda: runs, 20, "the call to run in a web process")
            await await_until(
                lambda: metrics.snapshot().get("queue_runs", 0) >= 1, 10, "the run to be acknowledged"
            )
            assert [n for _, n, _ in runs] == [7]
        finally:
            for hub in hubs:
                hub.stop()
