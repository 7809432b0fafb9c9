"""Background tasks that are never lost from sight.

asyncio keeps only a weak reference to a task and reports its exception, if ever, when the
task is garbage-collected: a crashed background task can vanish without a word while the
process carries on without the work it did (the hub's reader, a presence renewer). Every
task floorchannels starts goes through :func:`spawn` (one-shot work: held until done, its
crash logged with its traceback) or :func:`supervise` (work that must keep running:
restarted after a crash, with a growing pause so a persistent fault does not spin).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from . import metrics

logger = logging.getLogger("floorchannels.tasks")

#: Tasks started with no owner to hold them: held here until they finish.
_running: set[asyncio.Future[Any]] = set()

#: Pauses between restarts of a supervised task that keeps crashing, in seconds.
RESTART_MIN, RESTART_MAX = 0.1, 5.0


def spawn(
    coroutine: Awaitable[Any], name: str, holder: set[asyncio.Future[Any]] | None = None
) -> asyncio.Future[Any]:
    """Run ``coroutine`` in the background; a crash is counted and logged with its traceback.

    The task is held in ``holder`` (an owner's set, so the owner can cancel what it
    started) or in a module-level set, until it ends.
    """
    task = asyncio.ensure_future(coroutine)
    held = _running if holder is None else holder
    held.add(task)

    def done(finished: asyncio.Future[Any]) -> None:
        held.discard(finished)
        if not finished.cancelled() and (exc := finished.exception()) is not None:
            metrics.increment("task_crashes")
            logger.error("Background task %s failed.", name, exc_info=exc)

    task.add_done_callback(done)
    return task


def supervise(
    factory: Callable[[], Coroutine[Any, Any, Any]], name: str, holder: set[asyncio.Future[Any]] | None = None
) -> asyncio.Future[Any]:
    """Keep ``factory()`` running: a crash (or an unexpected return) is logged and the
    coroutine started again after a pause that doubles up to ``RESTART_MAX``."""
    return spawn(_keep_running(factory, name), name, holder)


async def _keep_running(factory: Callable[[], Coroutine[Any, Any, Any]], name: str) -> None:
    pause = RESTART_MIN
    while True:
        started = asyncio.get_running_loop().time()
        try:
            await factory()
            logger.error("Background task %s returned; starting it again.", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Background task %s crashed; starting it again.", name)
        metrics.increment("task_restarts")
        if asyncio.get_running_loop().time() - started > RESTART_MAX * 4:
            pause = RESTART_MIN  # it ran for a while: this is a new fault, not the same one
        await asyncio.sleep(pause)
        pause = min(pause * 2, RESTART_MAX)
