"""Queues run by Django's task framework instead of floorchannels' queue workers.

``FLOORCHANNELS["TASK_QUEUES"]`` routes a queue to a backend of ``settings.TASKS``: a call of
a signal whose handler has that queue becomes a task of
:data:`floorchannels.signal_tasks.run_signal`, stored by the backend and run by the backend's
own worker (``manage.py db_worker`` for the database backend), with no ``runworker`` to run.
The handler gets its ``window`` back from the task's arguments and reports progress to it
with ``call()``/``acall()`` exactly as on a queue worker: the task's process reaches the
windows through the channel layer, so it must share the web processes' layer (Redis).

What is promised is the backend's: ``queued: true`` means the backend accepted the task (the
database backend: its row is written), a delay is the task's ``run_after``, and whether a
task whose worker died runs again depends on the backend.

The task framework is ``django.tasks`` on Django 6 and the ``django-tasks`` package
(``django_tasks``) on Django 5.2; nothing here is imported unless a queue is routed.
"""

from __future__ import annotations

import datetime as dt
import importlib
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .conf import fc_settings
from .windows import WindowInfo

#: The ``TASK_QUEUES`` key that routes every queue not named.
ALL = "*"
#: What a route given as a dict may say.
_ROUTE_KEYS = {"backend", "queue_name", "priority"}


@dataclass(frozen=True)
class Route:
    """Where a queue's calls go: a task backend alias, its queue, a priority."""

    backend: str = "default"
    queue_name: str = "default"
    priority: int = 0


def framework() -> ModuleType:
    """Django's task framework: ``django.tasks`` (Django 6), else the ``django_tasks``
    backport; ImproperlyConfigured when neither is installed."""
    for name in ("django.tasks", "django_tasks"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImproperlyConfigured(
        "FLOORCHANNELS['TASK_QUEUES'] needs Django's task framework: Django 6, or on Django 5.2 "
        "the django-tasks package (pip install django-tasks)."
    )


def parse_route(value: Any) -> Route:
    """A ``TASK_QUEUES`` value as a :class:`Route`; ImproperlyConfigured if it is not one."""
    if isinstance(value, str) and value:
        return Route(backend=value)
    if isinstance(value, dict):
        unknown = set(value) - _ROUTE_KEYS
        if unknown:
            raise ImproperlyConfigured(
                f"a route has unknown keys {sorted(unknown)!r}; it may give {sorted(_ROUTE_KEYS)!r}"
            )
        route = Route(**value)
        if not isinstance(route.backend, str) or not route.backend:
            raise ImproperlyConfigured(f"a route's backend must be a TASKS alias, not {route.backend!r}")
        if not isinstance(route.queue_name, str) or not route.queue_name:
            raise ImproperlyConfigured(f"a route's queue_name must be a string, not {route.queue_name!r}")
        if not isinstance(route.priority, int) or isinstance(route.priority, bool):
            raise ImproperlyConfigured(f"a route's priority must be an integer, not {route.priority!r}")
        return route
    raise ImproperlyConfigured(
        f"a route is a TASKS backend alias or a dict with {sorted(_ROUTE_KEYS)!r}, not {value!r}"
    )


def routes() -> dict[str, Any]:
    """The ``TASK_QUEUES`` setting (empty when it is not a dict: E008 says so)."""
    value = fc_settings.TASK_QUEUES
    return value if isinstance(value, dict) else {}


def route_for(queue: str) -> Route | None:
    """The route of ``queue``, or None when its calls go to floorchannels' queue workers."""
    table = routes()
    value = table.get(queue, table.get(ALL))
    return None if value is None else parse_route(value)


def task_for(route: Route, eta: float | None = None) -> Any:
    """The signal task bound to ``route``'s backend, queue and priority, due at ``eta``.

    Raises the framework's InvalidTask (or InvalidTaskBackend) when the backend cannot take
    it: an unknown alias, a queue it does not serve, a priority or a delay it does not support.
    """
    from .signal_tasks import run_signal

    run_after = None
    if eta is not None and eta > time.time():
        if not framework().task_backends[route.backend].supports_defer:
            raise ValueError(
                f"task backend {route.backend!r} cannot delay a task (it does not support "
                "run_after): countdown and eta need a backend that does, such as the database one"
            )
        # Aware with USE_TZ, as the backends require; else naive local time, as Django keeps it.
        run_after = dt.datetime.fromtimestamp(eta, tz=dt.UTC if settings.USE_TZ else None)
    return run_signal.using(
        backend=route.backend, queue_name=route.queue_name, priority=route.priority, run_after=run_after
    )


def task_arguments(
    queue: str,
    name: str,
    window: WindowInfo,
    kwargs: dict[str, Any],
    call_id: str,
    expires: float | None,
) -> dict[str, Any]:
    """The keyword arguments of a signal task: JSON, as every backend stores them."""
    return {
        "queue": queue,
        "signal": name,
        "kwargs": kwargs,
        "window": window.to_task(),
        "call_id": call_id,
        "expires": expires,
    }


async def enqueue_task(
    route: Route,
    queue: str,
    name: str,
    window: WindowInfo,
    kwargs: dict[str, Any],
    call_id: str,
    eta: float | None,
    expires: float | None,
) -> Any:
    """Hand one call to ``route``'s task backend; return its task result once the backend
    has it (raises whatever kept it from taking the task: nothing was queued then)."""
    task = task_for(route, eta)
    return await task.aenqueue(**task_arguments(queue, name, window, kwargs, call_id, expires))


def check_routes() -> list[str]:
    """What is wrong with ``TASK_QUEUES``, one sentence per route (the system check E013).

    Each route's task is built as a call would build it, so the backend itself says whether
    it can take it (alias, queue name, priority).
    """
    table = routes()
    if not table:
        return []
    from .registry import _QUEUE

    try:
        framework()
    except ImproperlyConfigured as exc:
        return [str(exc)]
    problems = []
    for queue, value in table.items():
        if not isinstance(queue, str) or (queue != ALL and not _QUEUE.match(queue)):
            problems.append(f"{queue!r} is not a queue name (letters, digits, '_' and '-') nor {ALL!r}")
            continue
        try:
            task_for(parse_route(value))
        except Exception as exc:
            problems.append(f"queue {queue!r}: {exc}")
    return problems


def unreachable_routes() -> list[tuple[str, str]]:
    """(queue, backend alias) of the routes whose tasks run in another process while the
    channel layer is the in-memory one: what their handlers send reaches no window (W010).

    Only the immediate backend runs a task in the process that queued it.
    """
    layer = (getattr(settings, "CHANNEL_LAYERS", {}) or {}).get(fc_settings.CHANNEL_LAYER) or {}
    if not str(layer.get("BACKEND", "")).endswith(".InMemoryChannelLayer") or not routes():
        return []
    tasks = framework()
    immediate = importlib.import_module(f"{tasks.__name__}.backends.immediate").ImmediateBackend
    found = []
    for queue, value in routes().items():
        try:
            backend = tasks.task_backends[parse_route(value).backend]
        except Exception:
            continue  # E013
        if not isinstance(backend, immediate):
            found.append((queue, backend.alias))
    return found
