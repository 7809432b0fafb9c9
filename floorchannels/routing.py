"""Routes to include in the project's ASGI application.

``websocket_urlpatterns`` goes under the ``"websocket"`` key (inside ``URLRouter``), and
``worker_application`` under ``"channel"`` so ``runworker floorchannels.<queue>`` finds the
queued signals. The socket needs the Django session to check a window key against its user;
if the project did not wrap its websocket router in ``AuthMiddlewareStack`` or
``SessionMiddlewareStack``, the route adds session support itself (it never loads the user
for anonymous windows, so anonymous connects cost no database query).
"""

from __future__ import annotations

from typing import Any

from channels.sessions import SessionMiddlewareStack
from django.urls import path

from .conf import fc_settings
from .consumers import SignalConsumer
from .worker import SignalWorker


class EnsureSession:
    """Give the scope a lazy session unless middleware further out already did."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.with_session = SessionMiddlewareStack(inner)
        self.consumer_class = getattr(inner, "consumer_class", None)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        app = self.inner if "session" in scope else self.with_session
        await app(scope, receive, send)


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
    path(fc_settings.URL, EnsureSession(SignalConsumer.as_asgi()), name="floorchannels"),
]

worker_application = WorkerRouter()
