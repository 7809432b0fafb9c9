"""The signal registry: named Python handlers and the ``@signal`` decorator.

Several handlers may share one name (like Django's dispatcher); each carries its own
permission and queue. Registration happens at import time, in ``<app>.signals`` modules
that the AppConfig imports, so every process (web and worker) knows the same signals.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from channels.db import DatabaseSyncToAsync

from . import metrics
from .arguments import ArgumentSpec
from .conf import fc_settings
from .permissions import as_permission, server_side
from .windows import WindowInfo

logger = logging.getLogger("floorchannels.registry")

_NAME = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
_QUEUE = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True)
class Handler:
    """One registered Python function for a signal."""

    name: str
    func: Callable[..., Any]
    is_allowed_to: Any
    queue: str | None
    arguments: ArgumentSpec

    @property
    def is_async(self) -> bool:
        return asyncio.iscoroutinefunction(self.func)

    async def arun(self, window: WindowInfo, kwargs: dict[str, Any]) -> Any:
        """Run on the event loop; sync handlers go to a thread of their own executor (see
        :class:`HandlerExecutor`) with fresh DB connections."""
        if self.is_async:
            return await self.func(window, **kwargs)
        return await DatabaseSyncToAsync(self.func, thread_sensitive=False, executor=handler_executor())(
            window, **kwargs
        )

    def run(self, window: WindowInfo, kwargs: dict[str, Any]) -> Any:
        """Run from synchronous code (the caller's thread).

        An async handler goes through ``async_to_sync`` rather than the shared loop of
        :mod:`floorchannels.syncloop`: its ``database_sync_to_async`` calls then run in
        this thread, inside the caller's transaction, as they would have if it were sync.
        """
        if self.is_async:
            from asgiref.sync import async_to_sync

            return async_to_sync(self.func)(window, **kwargs)
        return self.func(window, **kwargs)


class HandlerExecutor(ThreadPoolExecutor):
    """The threads of synchronous handlers called from browsers, and only theirs.

    A handler that hangs keeps its thread after the call was answered ``timeout``: a
    thread cannot be stopped. On the loop's default executor (``min(32, cpus + 4)``
    threads), a few hung handlers took every thread, and the user checks of connecting
    windows queued behind them: no signed-in window could connect any more. Here they can
    only fill this executor; further calls wait for a thread and time out as before, and
    each time a call finds every thread busy it counts ``sync_handlers_saturated`` (and a
    WARNING says so, at most once a minute).
    """

    WARN_EVERY = 60.0

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="floorchannels-handler")
        self.size = max_workers
        self._count_lock = threading.Lock()
        self._outstanding = 0
        self._warned_at = -self.WARN_EVERY

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._count_lock:
            self._outstanding += 1
            saturated = self._outstanding > self.size
            warn = saturated and time.monotonic() - self._warned_at >= self.WARN_EVERY
            if warn:
                self._warned_at = time.monotonic()
        if saturated:
            metrics.increment("sync_handlers_saturated")
        if warn:
            logger.warning(
                "All %d threads for synchronous signal handlers are busy (hung handlers?): calls "
                "wait for one and may time out. See SYNC_HANDLER_THREADS.",
                self.size,
            )
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future[Any] | None) -> None:
        with self._count_lock:
            self._outstanding -= 1

    @property
    def busy(self) -> int:
        """Calls running or waiting for a thread."""
        return self._outstanding


_executor: HandlerExecutor | None = None
_executor_lock = threading.Lock()


def handler_executor() -> HandlerExecutor:
    """The process's executor for sync handlers, sized by ``SYNC_HANDLER_THREADS``."""
    global _executor
    size = max(1, int(fc_settings.SYNC_HANDLER_THREADS))
    with _executor_lock:
        if _executor is None or _executor.size != size:
            if _executor is not None:
                # Resized (tests change settings): running handlers finish on the old one.
                _executor.shutdown(wait=False)
            _executor = HandlerExecutor(size)
        return _executor


class Registry:
    """Maps signal names to their handlers, in registration order."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def register(self, handler: Handler) -> None:
        handlers = self._handlers.setdefault(handler.name, [])
        if any(existing.func is handler.func for existing in handlers):
            return  # a module imported twice registers once
        handlers.append(handler)

    def unregister(self, name: str, func: Callable[..., Any] | None = None) -> None:
        handlers = self._handlers.get(name, [])
        self._handlers[name] = [h for h in handlers if func is not None and h.func is not func]
        if not self._handlers[name]:
            del self._handlers[name]

    def get(self, name: str) -> list[Handler]:
        return self._handlers.get(name, [])

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def queues(self) -> set[str]:
        return {h.queue for handlers in self._handlers.values() for h in handlers if h.queue}


registry = Registry()


def signal(
    name: str,
    *,
    is_allowed_to: Any = server_side,
    queue: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as a handler of signal ``name``.

    The function's first parameter receives the :class:`~floorchannels.WindowInfo`; its
    other parameters are the signal's keyword arguments, checked against their type hints
    when a browser calls. ``is_allowed_to`` decides which browsers may call it (default:
    none, only Python code). With ``queue``, the handler runs on the Channels worker
    ``manage.py runworker floorchannels.<queue>`` instead of where it was called.
    """
    if not _NAME.match(name):
        raise ValueError(f"Invalid signal name {name!r}: use letters, digits, '_', '-' and dots.")
    if queue is not None and not _QUEUE.match(queue):
        raise ValueError(f"Invalid queue name {queue!r}: use letters, digits, '_' and '-'.")
    permission = as_permission(is_allowed_to)

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        registry.register(Handler(name, func, permission, queue, ArgumentSpec(func)))
        return func

    return decorator
