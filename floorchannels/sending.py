"""Writing to a socket without waiting for it.

The hub writes one message to thousands of sockets in a loop. Awaiting each ASGI ``send``
in turn lets one socket that stops reading stall all the others: uvicorn's send waits for
the transport to drain. Running each send as a task would cost a task per frame, which the
fan-out cannot afford. So a send is started and run up to its first suspension, as a task
would be: nearly always it completes there, at the cost of a plain ``await``. When it does
suspend, :func:`start` hands back the rest of it as an awaitable, and the socket finishes it
(and whatever queued up behind it) in a task of its own, off the fan-out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Generator
from types import CoroutineType
from typing import Any


def start(coroutine: Awaitable[Any]) -> Rest | None:
    """Run ``coroutine`` until it first suspends: None if it finished, else its rest.

    An exception raised before the first suspension propagates.
    """
    if type(coroutine) is not CoroutineType:
        # granian's send returns a future its Rust side completes once the frame is
        # written: it cannot be resumed like a coroutine, so it is awaited inside one.
        coroutine = _awaited(coroutine)
    # Iterating the coroutine runs it to its first suspension; when it finishes instead,
    # the loop just ends: no StopIteration is created, which halves the cost of the path
    # nearly every frame takes.
    for waiting in coroutine.__await__():
        return Rest(coroutine, waiting)
    return None


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class Rest:
    """The remainder of a coroutine suspended on ``waiting`` (what it last yielded).

    Awaiting it yields ``waiting`` to the running task first, then resumes the coroutine
    each time the task is woken, exactly as if the task had run it from the start.
    Cancellation and errors are thrown into the coroutine, so its cleanup runs.
    """

    __slots__ = ("coroutine", "waiting")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self.coroutine = coroutine
        self.waiting = waiting

    def __await__(self) -> Generator[Any, None, Any]:
        coroutine, waiting = self.coroutine, self.waiting
        while True:
            try:
                yield waiting
            except BaseException as exc:  # noqa: BLE001 - passed on to the coroutine
                try:
                    waiting = coroutine.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                waiting = coroutine.send(None)
            except StopIteration as stop:
                return stop.value

    def close(self) -> None:
        """Abandon the coroutine without running it further."""
        self.coroutine.close()
