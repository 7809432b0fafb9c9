"""Running queued server signals on a Channels worker.

``manage.py runworker floorchannels.<queue>`` listens on a queue's channel; each message names
a signal, its kwargs and the window it acts for. Permission was checked before the message
was queued (a browser cannot reach a queue otherwise), so the worker only runs handlers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.consumer import AsyncConsumer

from . import messages, metrics
from .registry import registry
from .tasks import spawn
from .windows import WindowInfo

logger = logging.getLogger("floorchannels.worker")


async def run_queued(message: dict[str, Any]) -> None:
    """Run the handlers of one queued message, honouring its eta and expiry.

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
        return
    window = WindowInfo.from_message(message.get("window") or {})
    kwargs = message.get("kwargs") or {}
    handlers = [h for h in registry.get(name) if h.queue == message.get("queue")]
    if not handlers:
        logger.error("No handler for queued signal %s on queue %s.", name, message.get("queue"))
    for handler in handlers:
        try:
            await handler.arun(window, kwargs)
            metrics.increment("queued_ok")
        except Exception:
            metrics.increment("queued_error")
            logger.exception("Queued signal %s failed (window %s).", name, window.window_id)


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
