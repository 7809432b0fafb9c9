"""Running queued server signals: ``manage.py runworker floorchannels.<queue>``.

Each queued message names a signal, its kwargs and the window it acts for. Permission was
checked before the message was queued (a browser cannot reach a queue otherwise), so the
worker only runs handlers.

On the Redis layers the calls wait in Redis streams (:mod:`floorchannels.queues`): a
``runworker`` process given ``floorchannels.<queue>`` channels serves those queues from
the moment it starts (:func:`start_for_runworker`, called when the routing is imported).
It still listens on the channels too, through :class:`SignalWorker`, for calls sent there
by web processes of an earlier release during a rolling deploy. With the in-memory layer
the web process runs its queues itself (the hub serves the channels).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from channels.consumer import AsyncConsumer

from . import messages, metrics, queues
from .registry import registry
from .tasks import spawn
from .windows import WindowInfo

logger = logging.getLogger("floorchannels.worker")


async def run_queued(message: dict[str, Any]) -> bool:
    """Run the handlers of one queued message, honouring its eta and expiry; whether none
    failed.

    Errors are logged, never raised: a failing handler must not stop the worker.
    """
    eta = message.get("eta")
    if eta is not None and eta > time.time():
        await asyncio.sleep(eta - time.time())
    expires = message.get("expires")
    name = message.get("signal")
    if expires is not None and time.time() > expires:
        metrics.increment("expired")
        logger.warning("Dropped expired signal %s (message %s).", name, message.get("id"))
        return True
    window = WindowInfo.from_message(message.get("window") or {})
    kwargs = message.get("kwargs") or {}
    handlers = [h for h in registry.get(name) if h.queue == message.get("queue")]
    if not handlers:
        logger.error("No handler for queued signal %s on queue %s.", name, message.get("queue"))
        return False
    ok = True
    for handler in handlers:
        try:
            await handler.arun(window, kwargs)
            metrics.increment("queued_ok")
        except Exception:
            ok = False
            metrics.increment("queued_error")
            logger.exception("Queued signal %s failed (window %s).", name, window.window_id)
    return ok


class SignalWorker(AsyncConsumer):
    """The consumer ``runworker`` runs for every ``floorchannels.*`` channel.

    Messages are handled one at a time, in order; a delayed one waits in its own task so it
    does not hold up those behind it.
    """

    async def dispatch(self, message: Any) -> None:
        # Channels raises for a message type with no method, which ends this consumer:
        # a message this release cannot use is skipped instead (see floorchannels.messages).
        if messages.accept(message, messages.RUN, f"worker channel {self.scope.get('channel', '?')}"):
            await super().dispatch(message)

    async def fc_run(self, message: dict[str, Any]) -> None:
        eta = message.get("eta")
        if eta is not None and eta > time.time():
            spawn(run_queued(message), f"delayed signal {message['signal']}", _delayed)
        else:
            await run_queued(message)


#: Delayed calls waiting for their eta in this worker.
_delayed: set[asyncio.Future[Any]] = set()


#: The durable queue workers of this process, once started.
_started: queues.Workers | None = None


def start_for_runworker(argv: Sequence[str] | None = None) -> queues.Workers | None:
    """In a ``manage.py runworker floorchannels.<queue> ...`` process on a Redis layer, start
    serving those durable queues (once per process); elsewhere, nothing.

    Channels' ``runworker`` only creates an application when a message reaches one of its
    channels, and nothing may: the calls wait in Redis streams, not on the channels. So the
    queues are served from the start, by a thread of their own (see
    :func:`floorchannels.queues.start_worker_thread`).
    """
    global _started
    argv = sys.argv if argv is None else argv
    if _started is not None or len(argv) < 2 or argv[1] != "runworker" or not queues.durable():
        return None
    names = queues.queues_from_channels(a for a in argv[2:] if not a.startswith("-"))
    routed = [name for name in names if _routed_to_tasks(name)]
    if routed:
        logger.warning(
            "runworker serves queue(s) %s, which TASK_QUEUES routes to Django's task framework: "
            "their calls go to the task backend's workers, never here.",
            ", ".join(routed),
        )
    if names:
        _started = queues.start_worker_thread(names)
    return _started


def _routed_to_tasks(queue: str) -> bool:
    from .task_queues import route_for

    return route_for(queue) is not None
