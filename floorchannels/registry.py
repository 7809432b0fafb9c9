"""The signal registry: named Python handlers and the ``@signal`` decorator.

Several handlers may share one name (like Django's dispatcher); each carries its own
permission and queue. Registration happens at import time, in ``<app>.signals`` modules
that the AppConfig imports, so every process (web and worker) knows the same signals.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from channels.db import DatabaseSyncToAsync

from .arguments import ArgumentSpec
from .permissions import as_permission, server_side
from .windows import WindowInfo

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
        """Run on the event loop; sync handlers go to a thread with fresh DB connections."""
        if self.is_async:
            return await self.func(window, **kwargs)
        return await DatabaseSyncToAsync(self.func, thread_sensitive=False)(window, **kwargs)

    def run(self, window: WindowInfo, kwargs: dict[str, Any]) -> Any:
        """Run from synchronous code (the caller's thread)."""
        if self.is_async:
            from asgiref.sync import async_to_sync

            return async_to_sync(self.func)(window, **kwargs)
        return self.func(window, **kwargs)


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
