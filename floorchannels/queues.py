"""Durable queues: a queued call waits in Redis until a worker has run it.

On the Redis layers a queue is not a channel of the layer: the pub/sub layer loses a
message nobody is subscribed to and hands it to every subscriber, and channels-redis'
core layer re-delivers to several consumers. A queue is a Redis stream instead, read
through one consumer group by every worker of the queue (docs/design.md, Durable queues):

- ``fc:q:<queue>``: the stream. :func:`push` adds a call (``XADD``) and only then is the
  browser told ``queued: true``; a worker takes it with ``XREADGROUP``, so each call goes
  to one worker; after the run the worker acknowledges and deletes it (``XACK``, ``XDEL``),
  so the stream holds exactly the calls waiting or running.
- A running call stays in the group's pending list. Its worker renews its claim every third
  of ``QUEUE_VISIBILITY_TIMEOUT``; a call whose worker stopped renewing (killed) is claimed
  by another worker and run again: at least once, never lost. After ``QUEUE_MAX_ATTEMPTS``
  deliveries a call goes to ``fc:q:<queue>:dead`` instead (a call that kills its worker).
- ``fc:q:<queue>:delayed``: calls with an eta, a sorted set by eta. Any worker moves the due
  ones into the stream (one Lua script, so each moves once): a delayed call survives the
  process that scheduled it and the worker that would have run it.
- ``fc:q:<queue>:workers``: each worker's last sign of life (Redis time), for "no worker
  seen" warnings and the ``queue_workers_<queue>`` gauge.

The handler learns which call it runs from :func:`current_call` (for idempotency: a call can
run twice when its worker dies after the handler's effects but before the acknowledgement).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import messages, metrics
from .conf import fc_settings
from .redis_clients import layer_redis_url, redis_client
from .tasks import spawn, supervise

logger = logging.getLogger("floorchannels.queues")

GROUP = "fc-workers"
#: A worker's sign of life older than this is forgotten (the set stays bounded).
FORGET_WORKERS_AFTER = 86400
#: A consumer of the group with nothing pending, idle this long, is deleted (restarted
#: workers each leave one behind).
FORGET_CONSUMERS_AFTER = 3600
#: Dead letters kept per queue (oldest trimmed first).
DEAD_LETTERS = 10_000
#: Longest wait for a new call before the worker looks at claims and delays again, in s.
POLL = 1.0


class QueueFull(Exception):
    """The queue holds ``QUEUE_MAX_LENGTH`` calls already; this one was not queued."""


@dataclass(frozen=True)
class QueuedCall:
    """The call a queued handler runs: see :func:`current_call`."""

    #: The call's id: the browser call's ``<window id>:<call id>``, or the message id
    #: call()/acall() returned. The same on every run of the call.
    id: str
    queue: str
    #: 1 on the first run; more when a worker died during an earlier one.
    attempt: int
    #: The call's entry in the queue's stream (changes when a delayed call becomes due).
    entry: str


_current: contextvars.ContextVar[QueuedCall | None] = contextvars.ContextVar(
    "floorchannels_call", default=None
)


def current_call() -> QueuedCall | None:
    """The queued call the running handler serves, or None outside a durable queue.

    Readable from sync and async handlers (and what they call). A call runs at least once:
    a handler whose effects must not happen twice records ``current_call().id`` with them
    (a unique column, a Redis ``SET NX``) and skips a call it has seen.
    """
    return _current.get()


@contextlib.contextmanager
def serving(call: QueuedCall) -> Iterator[None]:
    """Make ``call`` the :func:`current_call` of what runs inside (queue workers, and the
    task that runs a call routed to Django's task framework)."""
    token = _current.set(call)
    try:
        yield
    finally:
        _current.reset(token)


# Which path queued calls take ---------------------------------------------------------------


def redis_url() -> str | None:
    """The Redis of the channel layer (its first host), where queues are kept."""
    return layer_redis_url(fc_settings.CHANNEL_LAYER)


def in_process() -> bool:
    """Whether web processes run the queues themselves, from the channel layer."""
    setting = fc_settings.RUN_QUEUES_IN_PROCESS
    if setting is None:
        return redis_url() is None
    return bool(setting)


def durable() -> bool:
    """Whether queued calls go to Redis streams: on a Redis layer, whoever runs them (workers,
    or the web processes themselves with RUN_QUEUES_IN_PROCESS)."""
    return redis_url() is not None


def stream_key(queue: str) -> str:
    return f"fc:q:{queue}"


def _keys(queue: str) -> tuple[str, str, str, str]:
    stream = stream_key(queue)
    return stream, f"{stream}:delayed", f"{stream}:workers", f"{stream}:dead"


def _client() -> Any:
    url = redis_url()
    if url is None:
        raise RuntimeError("Durable queues need a Redis channel layer.")
    return redis_client(url, decode_responses=True)


# Enqueueing ---------------------------------------------------------------------------------

#: KEYS: stream, delayed, workers. ARGV: max length, message, eta ('' for none), worker
#: timeout. Returns {queued (1/0), length before, workers seen within the timeout}.
_PUSH = """
local size = redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
local now = tonumber(redis.call('TIME')[1])
local seen = redis.call('ZCOUNT', KEYS[3], now - tonumber(ARGV[4]), '+inf')
if size >= tonumber(ARGV[1]) then return {0, size, seen} end
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
else
  redis.call('XADD', KEYS[1], '*', 'm', ARGV[2])
end
return {1, size, seen}
"""

#: KEYS: stream, delayed. ARGV: now, most to move. Returns {moved, next eta or false}.
_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do redis.call('XADD', KEYS[1], '*', 'm', m) end
if #due > 0 then redis.call('ZREM', KEYS[2], unpack(due)) end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {#due, nxt[2] or false}
"""

#: KEYS: stream. ARGV: group, entry, consumer. Acknowledges and deletes the entry if this
#: consumer still holds it: 1; 0 when another worker took it over (it finishes it); -1 when
#: it is no longer pending.
_DONE = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 then return -1 end
if p[1][2] ~= ARGV[3] then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

#: KEYS: workers. ARGV: consumer, forget after. Returns Redis time.
_BEAT = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return now
"""

#: Rate limit of the "no worker" WARNING, per queue and process (seconds).
_WARN_EVERY = 60.0
_warned: dict[str, float] = {}


async def push(queue: str, message: dict[str, Any]) -> None:
    """Keep ``message`` (an ``fc.run``) in ``queue`` until a worker has run it.

    Returns once Redis holds it; raises :class:`QueueFull` past ``QUEUE_MAX_LENGTH``, and
    Redis errors as they come: either way nothing was queued.
    """
    stream, delayed, workers, _dead = _keys(queue)
    eta = message.get("eta")
    due_later = eta is not None and eta > time.time()
    queued, size, seen = await _client().eval(
        _PUSH,
        3,
        stream,
        delayed,
        workers,
        int(fc_settings.QUEUE_MAX_LENGTH),
        json.dumps(message, separators=(",", ":")),
        repr(float(eta)) if due_later else "",
        float(fc_settings.QUEUE_WORKER_TIMEOUT),
    )
    if not queued:
        metrics.increment("queue_full")
        raise QueueFull(f"Queue {queue!r} holds {size:,} calls (QUEUE_MAX_LENGTH): are its workers running?")
    if not seen:
        metrics.increment("queue_no_worker")
        now = time.monotonic()
        if now - _warned.get(queue, -_WARN_EVERY) >= _WARN_EVERY:
            _warned[queue] = now
            logger.warning(
                "Queued %s on queue %r, which has had no worker for %s s: it waits in Redis until "
                "one starts (manage.py runworker %s%s). Further calls are only counted "
                "(queue_no_worker) for a minute.",
                message.get("signal"),
                queue,
                fc_settings.QUEUE_WORKER_TIMEOUT,
                fc_settings.QUEUE_PREFIX,
                queue,
            )


# What operators see ------------------------------------------------------------------------


async def stats(queue: str) -> dict[str, Any]:
    """What ``queue`` holds now: ``waiting`` (not yet taken), ``running`` (taken by a
    worker), ``delayed``, ``dead`` (dead letters), ``oldest_seconds`` (age of the oldest
    call not done), ``workers`` (seen within ``QUEUE_WORKER_TIMEOUT``)."""
    client = _client()
    stream, delayed, workers, dead = _keys(queue)
    async with client.pipeline(transaction=False) as pipe:
        pipe.xlen(stream)
        pipe.zcard(delayed)
        pipe.xlen(dead)
        pipe.xrange(stream, count=1)
        pipe.time()
        length, waiting_later, dead_count, first, (now, _micro) = await pipe.execute()
    try:
        running = (await client.xpending(stream, GROUP))["pending"]
    except Exception as exc:  # no group yet: no worker ever started
        if not _stream_gone(exc):
            raise
        running = 0
    seen = await client.zcount(workers, now - float(fc_settings.QUEUE_WORKER_TIMEOUT), "+inf")
    oldest = 0.0
    if first:
        oldest = max(0.0, now - int(first[0][0].partition("-")[0]) / 1000)
    return {
        "queue": queue,
        "waiting": length - running,
        "running": running,
        "delayed": waiting_later,
        "dead": dead_count,
        "oldest_seconds": round(oldest, 3),
        "workers": seen,
    }


#: KEYS: dead, stream. ARGV: most to move. Moves dead letters back, oldest first.
_RETRY_DEAD = """
local dead = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', tonumber(ARGV[1]))
for _, item in ipairs(dead) do
  local fields = item[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'm' then redis.call('XADD', KEYS[2], '*', 'm', fields[i + 1]) end
  end
  redis.call('XDEL', KEYS[1], item[1])
end
return #dead
"""


async def retry_dead(queue: str) -> int:
    """Queue every dead letter of ``queue`` again (as new calls, first attempt); how many."""
    _stream, _delayed, _workers, dead = _keys(queue)
    moved = total = 1
    while moved:
        moved = await _client().eval(_RETRY_DEAD, 2, dead, stream_key(queue), 1000)
        total += moved
    return total - 1


def _publish_gauges(values: dict[str, Any]) -> None:
    queue = values["queue"]
    metrics.set_gauge(f"queue_waiting_{queue}", values["waiting"] + values["running"])
    metrics.set_gauge(f"queue_delayed_{queue}", values["delayed"])
    metrics.set_gauge(f"queue_oldest_seconds_{queue}", values["oldest_seconds"])
    metrics.set_gauge(f"queue_workers_{queue}", values["workers"])


# Workers -------------------------------------------------------------------------------------


@dataclass
class _Taken:
    entry: str
    message: dict[str, Any] | None  # None: not an fc.run this release can read
    attempt: int
    fields: dict[str, str] | None


class QueueWorker:
    """One worker's loop on one queue: takes calls one at a time and runs them.

    A call stays claimed while it runs (the claim is renewed); it is acknowledged and
    deleted once the handlers returned or raised. A handler that raises is not run again
    (counted ``queue_failures``): re-runs are for calls whose worker died.
    """

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.stream, self.delayed, self.workers, self.dead = _keys(queue)
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping = False
        #: The call in progress (run, then acknowledged), for a graceful stop.
        self.current: asyncio.Future[Any] | None = None
        self.taken: _Taken | None = None
        #: Set when run() has left its loop after stop().
        self.finished = asyncio.Event()
        self._beat_at = 0.0
        self._forget_at = 0.0
        self._next_due: float | None = None
        #: Claims renewed on running calls (for tests and debugging).
        self.renewals = 0

    @property
    def visibility_ms(self) -> int:
        return max(1, int(float(fc_settings.QUEUE_VISIBILITY_TIMEOUT) * 1000))

    async def run(self) -> None:
        """Serve the queue until :meth:`stop`; raises on Redis errors (the supervisor
        restarts it after a pause)."""
        client = _client()
        await self._create_group(client)
        while not self.stopping:
            try:
                await self._beat(client)
                await self._move_due(client)
                taken = await self._claim_stale(client) or await self._read(client)
            except Exception as exc:
                if not _stream_gone(exc):
                    raise
                # The stream is gone: Redis restarted without persistence, or was flushed.
                logger.warning(
                    "Queue %s lost its stream in Redis (restarted without persistence?): calls "
                    "queued before are gone. Serving the new ones.",
                    self.queue,
                )
                metrics.increment("queue_errors")
                await self._create_group(client)
                continue
            if taken is not None and not self.stopping:
                self.taken = taken
                self.current = asyncio.ensure_future(self._execute(client, taken))
                try:
                    # Shielded: a stop cancels this loop, never a call half done.
                    await asyncio.shield(self.current)
                finally:
                    self.taken = None
            elif taken is not None:
                await self._release(client, taken.entry)
        self.finished.set()
        await asyncio.Event().wait()  # stopped: wait to be cancelled (a return would be restarted)

    async def _create_group(self, client: Any) -> None:
        try:
            # From the start of the stream: calls queued before any worker existed are served.
            await client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _beat(self, client: Any) -> None:
        now = time.monotonic()
        if now < self._beat_at:
            return
        self._beat_at = now + min(5.0, float(fc_settings.QUEUE_VISIBILITY_TIMEOUT) / 3)
        await client.eval(_BEAT, 1, self.workers, self.consumer, FORGET_WORKERS_AFTER)
        _publish_gauges(await stats(self.queue))
        if now >= self._forget_at:
            self._forget_at = now + 60
            await self._forget_consumers(client)

    async def _forget_consumers(self, client: Any) -> None:
        for consumer in await client.xinfo_consumers(self.stream, GROUP):
            idle = consumer.get("inactive", consumer.get("idle", 0))
            if consumer["pending"] == 0 and idle > FORGET_CONSUMERS_AFTER * 1000:
                await client.xgroup_delconsumer(self.stream, GROUP, consumer["name"])

    async def _move_due(self, client: Any) -> None:
        """Move the delayed calls that are due into the stream (every turn of the loop, so at
        least once per POLL: a call scheduled meanwhile may be due before the one known)."""
        now = time.time()
        moved, next_due = await client.eval(_MOVE_DUE, 2, self.stream, self.delayed, repr(now), 100)
        self._next_due = float(next_due) if next_due else None
        if moved:
            logger.debug("Moved %d due call(s) into queue %s.", moved, self.queue)

    async def _claim_stale(self, client: Any) -> _Taken | None:
        """A call whose worker stopped renewing its claim: taken over, or dead-lettered."""
        pending = await client.xpending_range(self.stream, GROUP, "-", "+", 10, idle=self.visibility_ms)
        for item in pending:
            # min_idle_time makes the claim atomic: of two workers, only one gets it.
            claimed = await client.xclaim(
                self.stream, GROUP, self.consumer, self.visibility_ms, [item["message_id"]]
            )
            if not claimed:
                continue
            entry, fields = claimed[0]
            attempt = int(item["times_delivered"]) + 1
            message = _decode(fields)
            if attempt > int(fc_settings.QUEUE_MAX_ATTEMPTS):
                reason = f"delivered {attempt - 1} times without finishing (QUEUE_MAX_ATTEMPTS)"
                await self._dead_letter(
                    client, _Taken(entry, message, attempt - 1, fields), reason, item["consumer"]
                )
                continue
            metrics.increment("queue_reruns")
            logger.warning(
                "Running %s again (attempt %d on queue %s): worker %s stopped during it.",
                (message or {}).get("signal"),
                attempt,
                self.queue,
                item["consumer"],
            )
            return _Taken(entry, message, attempt, fields)
        return None

    async def _read(self, client: Any) -> _Taken | None:
        block = POLL
        if self._next_due is not None:
            block = min(POLL, max(0.01, self._next_due - time.time()))
        result = await client.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=1, block=max(1, int(block * 1000))
        )
        if not result:
            return None
        entry, fields = result[0][1][0]
        return _Taken(entry, _decode(fields), 1, fields)

    async def _execute(self, client: Any, taken: _Taken) -> None:
        from .registry import registry
        from .worker import run_queued

        message = taken.message
        if message is None:
            # Not a call this release can read (a newer release queued it?): kept, not lost.
            await self._dead_letter(client, taken, "this release cannot read it")
            return
        if not [h for h in registry.get(message["signal"]) if h.queue == self.queue]:
            await self._dead_letter(
                client, taken, "no handler of this signal is registered for this queue here"
            )
            return
        keeper = spawn(self._keep_claim(client, taken.entry), f"claim of {taken.entry} on {self.queue}")
        try:
            with serving(QueuedCall(message["id"], self.queue, taken.attempt, taken.entry)):
                ok = await run_queued(message)
        finally:
            keeper.cancel()
        metrics.increment("queue_runs")
        if not ok:
            metrics.increment("queue_failures")
        await self._done(client, taken.entry)

    async def _keep_claim(self, client: Any, entry: str) -> None:
        """Renew the claim on the running call so no other worker takes it over."""
        while True:
            await asyncio.sleep(float(fc_settings.QUEUE_VISIBILITY_TIMEOUT) / 3)
            try:
                await client.xclaim(self.stream, GROUP, self.consumer, 0, [entry], justid=True)
                self.renewals += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.increment("queue_errors")
                logger.warning(
                    "Could not renew the claim on call %s of queue %s.", entry, self.queue, exc_info=True
                )

    async def _done(self, client: Any, entry: str) -> None:
        """Acknowledge and delete a finished call, unless another worker took it over (that
        worker, running it again, finishes it)."""
        if await client.eval(_DONE, 1, self.stream, GROUP, entry, self.consumer) != 1:
            logger.warning(
                "Call %s of queue %s finished after another worker had taken it over: it ran "
                "twice (raise QUEUE_VISIBILITY_TIMEOUT if this worker was only slow).",
                entry,
                self.queue,
            )

    async def _dead_letter(
        self, client: Any, taken: _Taken, reason: str, last_consumer: str | None = None
    ) -> None:
        """Move a call to the queue's dead letters (kept, trimmed to ~DEAD_LETTERS), with why."""
        entry = {
            "m": (taken.fields or {}).get("m", ""),
            "deliveries": taken.attempt,
            "worker": last_consumer or self.consumer,
            "from": taken.entry,
            "reason": reason,
        }
        async with client.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead, entry, maxlen=DEAD_LETTERS, approximate=True)
            pipe.xack(self.stream, GROUP, taken.entry)
            pipe.xdel(self.stream, taken.entry)
            await pipe.execute()
        metrics.increment("queue_dead_lettered")
        logger.error(
            "Call %s moved to the dead letters of queue %s (%s): %s.",
            taken.entry,
            self.queue,
            self.dead,
            reason,
        )

    async def _release(self, client: Any, entry: str) -> None:
        """Hand a taken call back: idle as if its worker had died, so another takes it now."""
        await client.xclaim(
            self.stream, GROUP, self.consumer, 0, [entry], idle=self.visibility_ms, justid=True
        )
        metrics.increment("queue_released")

    async def stop(self, grace: float) -> None:
        """Take no new call; give the running one ``grace`` seconds, then hand it back."""
        self.stopping = True
        client = _client()
        current, taken = self.current, self.taken
        released = False
        if current is not None and taken is not None and not current.done():
            try:
                await asyncio.wait_for(asyncio.shield(current), grace)
            except TimeoutError:
                released = True
                await self._release(client, taken.entry)
                logger.warning(
                    "Stopping: call %s of queue %s did not finish within QUEUE_SHUTDOWN_GRACE "
                    "(%s s); handed back to the other workers (it runs again).",
                    taken.entry,
                    self.queue,
                    grace,
                )
            except Exception:
                logger.exception("Call %s of queue %s failed while stopping.", taken.entry, self.queue)
        if not released:  # else the loop is still inside the call it handed back
            try:
                # The loop leaves at its next turn (a read waits at most POLL seconds), so
                # a call it has just read is handed back rather than left to time out.
                await asyncio.wait_for(self.finished.wait(), POLL * 5)
            except TimeoutError:
                logger.warning("Queue worker %s did not leave its loop in time.", self.queue)
        await client.zrem(self.workers, self.consumer)
        try:
            pending = await client.xpending_range(self.stream, GROUP, "-", "+", 1, consumername=self.consumer)
            if not pending:
                await client.xgroup_delconsumer(self.stream, GROUP, self.consumer)
        except Exception as exc:
            if not _stream_gone(exc):
                raise


def _stream_gone(exc: Exception) -> bool:
    """Whether a Redis error says the queue's stream (and so its group) no longer exists."""
    text = str(exc)
    return text.startswith(("NOGROUP", "UNBLOCKED")) or "NOGROUP" in text


def _decode(fields: dict[str, str] | None) -> dict[str, Any] | None:
    try:
        message = json.loads((fields or {})["m"])
    except (KeyError, ValueError):
        message = {"type": None}
    if messages.accept(message, messages.RUN, "a durable queue"):
        return message
    return None


# Serving queues in a runworker process ------------------------------------------------------


class Workers:
    """The queue workers of one process, started together and stopped together."""

    def __init__(self, queues: Iterable[str]) -> None:
        self.workers = [QueueWorker(queue) for queue in queues]
        self._tasks: set[asyncio.Future[Any]] = set()
        self.started = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        for worker in self.workers:
            supervise(worker.run, f"queue worker {worker.queue}", self._tasks)
        self.started.set()
        await self._done.wait()

    async def stop(self, grace: float) -> None:
        """Stop every worker gracefully (see :meth:`QueueWorker.stop`)."""
        results = await asyncio.gather(*(w.stop(grace) for w in self.workers), return_exceptions=True)
        for worker, result in zip(self.workers, results, strict=True):
            if isinstance(result, Exception):
                logger.warning("Queue worker %s did not stop cleanly: %s", worker.queue, result)
        for task in list(self._tasks):
            task.cancel()
        self._done.set()


def queues_from_channels(channels: Iterable[str]) -> list[str]:
    """The queues named by ``runworker`` channel arguments (``floorchannels.<queue>``)."""
    prefix = fc_settings.QUEUE_PREFIX
    return [c[len(prefix) :] for c in channels if c.startswith(prefix) and len(c) > len(prefix)]


def start_worker_thread(queues: list[str]) -> Workers:
    """Serve ``queues`` from a thread of this process, with a loop of its own.

    Used in ``runworker`` processes (see :mod:`floorchannels.routing`): Channels' worker
    starts an application only when a message reaches its channel, while a durable queue's
    worker must start at once, to run what waited while no worker ran. On SIGTERM it takes
    no new call, lets the running one finish (``QUEUE_SHUTDOWN_GRACE``) or hands it back,
    and then the process ends as it would have.
    """
    workers = Workers(queues)

    def main() -> None:
        try:
            asyncio.run(workers.serve())
        except Exception:
            logger.exception("The durable queue workers stopped.")

    thread = threading.Thread(target=main, name="floorchannels-queues", daemon=True)
    thread.start()
    _install_sigterm(workers)
    logger.info("Serving durable queues %s (consumer %s).", ", ".join(queues), workers.workers[0].consumer)
    return workers


def _install_sigterm(workers: Workers) -> None:
    if not fc_settings.GRACEFUL_SHUTDOWN or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        # Ignored, or someone else's handler: leave it (the process ends, or not, as before;
        # a call cut short runs again after QUEUE_VISIBILITY_TIMEOUT).
        logger.info("SIGTERM already has a handler: durable queue workers stop without a grace period.")
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        loop = workers.loop
        if loop is None or loop.is_closed():
            os.kill(os.getpid(), signal.SIGTERM)
            return
        grace = float(fc_settings.QUEUE_SHUTDOWN_GRACE)
        future = asyncio.run_coroutine_threadsafe(workers.stop(grace), loop)
        future.add_done_callback(lambda _f: os.kill(os.getpid(), signal.SIGTERM))

    signal.signal(signal.SIGTERM, on_sigterm)
