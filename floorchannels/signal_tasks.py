"""The task that runs queued signals on Django's task framework (see :mod:`floorchannels.task_queues`).

A task backend's worker finds a task by its module path and imports it, so the task lives at
module level, here: ``floorchannels.signal_tasks.run_signal``. It is made when this module is
first imported (by the first routed call, or by the backend's worker), on the backend of the
first ``TASK_QUEUES`` route that takes it; each call then binds it to its own route with
``.using()``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .queues import QueuedCall, serving
from .syncloop import run_sync
from .task_queues import Route, framework, parse_route, routes
from .windows import WindowInfo
from .worker import run_queued


class QueuedSignalFailed(Exception):
    """A handler of a signal run as a task raised (logged by ``floorchannels.worker`` with
    its traceback), or none is registered in the worker's process: the task is failed, so the
    backend's results say so."""


def _as_task(func: Any) -> Any:
    """``func`` as a task of the first route's backend that takes it (a misrouted queue,
    which the system check E013 names, must not keep the others from working)."""
    candidates = []
    for value in routes().values():
        try:
            candidates.append(parse_route(value))
        except ImproperlyConfigured:
            continue
    problems = []
    for route in [*candidates, Route()]:
        try:
            return framework().task(
                takes_context=True,
                backend=route.backend,
                queue_name=route.queue_name,
                priority=route.priority,
            )(func)
        except Exception as exc:
            problems.append(f"{route.backend!r}: {exc}")
    raise ImproperlyConfigured(f"No TASKS backend takes floorchannels' signal task ({'; '.join(problems)}).")


async def _run(message: dict[str, Any], call: QueuedCall) -> bool:
    with serving(call):
        return await run_queued(message)


@_as_task
def run_signal(
    context: Any,
    *,
    queue: str,
    signal: str,
    kwargs: dict[str, Any],
    window: dict[str, Any],
    call_id: str,
    expires: float | None = None,
) -> None:
    """Run the handlers of ``signal`` on ``queue`` for ``window`` (as ``WindowInfo.to_task()``
    gave it), as a queue worker would: ``current_call()`` tells them the call's id and the
    task's attempt; an ``expires`` passed drops the call (WARNING, metric ``expired``)."""
    message = {
        "id": call_id,
        "queue": queue,
        "signal": signal,
        "kwargs": kwargs,
        "window": WindowInfo.from_task(window).to_message(),
        "expires": expires,
    }
    call = QueuedCall(call_id, queue, int(context.attempt), str(context.task_result.id))
    if not run_sync(_run, message, call):
        raise QueuedSignalFailed(
            f"Queued signal {signal!r} on queue {queue!r} (call {call_id}) failed: see the "
            "floorchannels.worker log for the handler's traceback."
        )
