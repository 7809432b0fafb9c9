"""Who may call a server signal from a browser.

A permission is any callable ``(window, kwargs) -> bool`` (or an async one). The built-ins
below are classes so they can say whether they touch the database: those that only read
the already-loaded user run on the event loop, the others in a thread. Anything else is
assumed to need a thread. Permissions combine with ``&``, ``|`` and ``~``.

Python code (views, commands, workers) is trusted and never checked: these gate browsers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from channels.db import DatabaseSyncToAsync

from .windows import WindowInfo


class Permission:
    """Base of the built-in permissions. Subclasses implement :meth:`has_permission`."""

    #: True when has_permission may query the database and must run off the event loop.
    needs_thread = False

    def has_permission(self, window: WindowInfo, kwargs: dict[str, Any]) -> bool:
        raise NotImplementedError

    def __call__(self, window: WindowInfo, kwargs: dict[str, Any]) -> bool:
        return self.has_permission(window, kwargs)

    def __and__(self, other: Any) -> Permission:
        return _All(self, as_permission(other))

    def __or__(self, other: Any) -> Permission:
        return _Any(self, as_permission(other))

    def __invert__(self) -> Permission:
        return _Not(self)


class _ServerSide(Permission):
    def has_permission(self, window, kwargs):
        return False

    def __repr__(self):
        return "server_side"


class _Everyone(Permission):
    def has_permission(self, window, kwargs):
        return True

    def __repr__(self):
        return "everyone"


class _UserFlag(Permission):
    def __init__(self, flag: str) -> None:
        self.flag = flag

    def has_permission(self, window, kwargs):
        user = window.user
        return bool(user.is_authenticated and user.is_active and getattr(user, self.flag, False))

    def __repr__(self):
        return self.flag


class has_perm(Permission):  # noqa: N801 - reads like the function it wraps
    """The window's user has Django permission ``perm`` (``"app_label.codename"``)."""

    needs_thread = True

    def __init__(self, perm: str) -> None:
        self.perm = perm

    def has_permission(self, window, kwargs):
        return bool(window.user.has_perm(self.perm))

    def __repr__(self):
        return f"has_perm({self.perm!r})"


class _Callable(Permission):
    needs_thread = True

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func

    def has_permission(self, window, kwargs):
        return bool(self.func(window, kwargs))


class _All(Permission):
    def __init__(self, *parts: Permission) -> None:
        self.parts = parts
        self.needs_thread = any(part.needs_thread for part in parts)

    def has_permission(self, window, kwargs):
        return all(part.has_permission(window, kwargs) for part in self.parts)


class _Any(_All):
    def has_permission(self, window, kwargs):
        return any(part.has_permission(window, kwargs) for part in self.parts)


class _Not(_All):
    def has_permission(self, window, kwargs):
        return not self.parts[0].has_permission(window, kwargs)


server_side = _ServerSide()
"""No browser: only Python code (views, commands, workers) may send the signal. The
default of ``@signal``, so a handler is never exposed by accident."""

everyone = _Everyone()
"""Every window, anonymous visitors included."""

is_authenticated = _UserFlag("is_authenticated")
"""Windows of a signed-in, active user."""

is_staff = _UserFlag("is_staff")
"""Windows of an active user with ``is_staff``."""

is_superuser = _UserFlag("is_superuser")
"""Windows of an active user with ``is_superuser``."""


def as_permission(value: Any) -> Permission | Callable[..., Any]:
    """Accept a Permission, a plain callable or an async callable."""
    if isinstance(value, Permission) or asyncio.iscoroutinefunction(value):
        return value
    if callable(value):
        return _Callable(value)
    raise TypeError(f"is_allowed_to must be callable, not {value!r}")


async def check(permission: Any, window: WindowInfo, kwargs: dict[str, Any]) -> bool:
    """Evaluate ``permission`` for a browser call without blocking the event loop."""
    if asyncio.iscoroutinefunction(permission):
        return bool(await permission(window, kwargs))
    if permission.needs_thread:
        return await DatabaseSyncToAsync(permission, thread_sensitive=False)(window, kwargs)
    return permission(window, kwargs)
