"""Routes to include in the project's ASGI application.

``websocket_urlpatterns`` goes under the ``"websocket"`` key (inside ``URLRouter``), and
``worker_application`` under ``"channel"`` so ``runworker floorchannels.<queue>`` finds the
queued signals. No session or auth middleware is needed: the consumer reads the session
from the Cookie header itself, and only for windows whose key names a user (anonymous
connects cost no session object and no database query). A project that wraps the router
in ``AuthMiddlewareStack`` anyway works too: the consumer then uses the scope's session.
"""

from __future__ import annotations

from typing import Any

from django.urls import path

from .conf import fc_settings
from .consumers import SignalConsumer
from .worker import SignalWorker, start_for_runworker


class WorkerRouter:
    """Routes every ``<QUEUE_PREFIX><queue>`` channel to :class:`SignalWorker`."""

    def __init__(self) -> None:
        self.worker = SignalWorker.as_asgi()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        channel = scope.get("channel", "")
        if not channel.startswith(fc_settings.QUEUE_PREFIX):
            raise ValueError(f"No floorchannels queue is named {channel!r}.")
        await self.worker(scope, receive, send)


websocket_urlpatterns = [
    path(fc_settings.URL, SignalConsumer.as_asgi(), name="floorchannels"),
]

worker_application = WorkerRouter()

# `manage.py runworker floorchannels.<queue>` imports this module (through ASGI_APPLICATION)
# before it starts: the durable queues it names are served from then on.
start_for_runworker()
