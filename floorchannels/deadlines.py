"""The hello deadline of every new socket of an event loop, kept with one timer.

A socket has ``HELLO_TIMEOUT`` seconds to say hello. ``asyncio.timeout`` around each
socket's first read costs a timeout object, a timer handle and a bound method per connect,
and a cancelled handle may stay in the loop's heap until its deadline: a burst of
connects paid for it in CPU and in memory it churned. Every socket gets the same timeout,
so the order sockets start waiting in is their deadline order: sockets wait in
insertion-ordered queues (one per timeout value, normally one) and a single timer is armed
for the earliest deadline.

An expired socket's task is cancelled, as ``asyncio.timeout`` would do; :meth:`expired`
tells the waiting code that the cancellation was the deadline's and not someone else's.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from typing import Any


class HelloDeadlines:
    """The sockets of one event loop waiting for their first frame, and their deadlines."""

    def __init__(self) -> None:
        #: Waiting tasks by timeout, each queue in deadline order: {timeout: {task: deadline}}.
        self.queues: dict[float, OrderedDict[asyncio.Task[Any], float]] = {}
        #: Tasks cancelled by their deadline, until they stop waiting.
        self.cancelled: set[asyncio.Task[Any]] = set()
        self.timer: asyncio.TimerHandle | None = None

    def add(self, task: asyncio.Task[Any], timeout: float) -> None:
        """Cancel ``task`` in ``timeout`` seconds unless :meth:`discard` is called first."""
        deadline = asyncio.get_running_loop().time() + timeout
        queue = self.queues.get(timeout)
        if queue is None:
            queue = self.queues[timeout] = OrderedDict()
        queue[task] = deadline
        if self.timer is None or deadline < self.timer.when():
            self._arm(deadline)

    def discard(self, task: asyncio.Task[Any]) -> None:
        """``task`` stopped waiting (its frame came, or its deadline passed)."""
        self.cancelled.discard(task)
        for timeout, queue in self.queues.items():
            if queue.pop(task, None) is not None:
                if not queue:
                    del self.queues[timeout]
                    if not self.queues and self.timer is not None:
                        # Nothing waits: no handle (which holds the loop) is left behind.
                        self.timer.cancel()
                        self.timer = None
                return

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether ``task`` was cancelled by its deadline."""
        return task in self.cancelled

    def _arm(self, deadline: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_at(deadline, self._expire)

    def _expire(self) -> None:
        self.timer = None
        now = asyncio.get_running_loop().time()
        earliest = None
        for timeout in list(self.queues):
            queue = self.queues[timeout]
            while queue:
                task, deadline = next(iter(queue.items()))
                if deadline > now:
                    earliest = deadline if earliest is None else min(earliest, deadline)
                    break
                del queue[task]
                if not task.done():
                    self.cancelled.add(task)
                    task.cancel()
            if not queue:
                del self.queues[timeout]
        if earliest is not None:
            self._arm(earliest)


_deadlines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HelloDeadlines] = weakref.WeakKeyDictionary()


def hello_deadlines() -> HelloDeadlines:
    """The running loop's :class:`HelloDeadlines`."""
    loop = asyncio.get_running_loop()
    deadlines = _deadlines.get(loop)
    if deadlines is None:
        deadlines = _deadlines[loop] = HelloDeadlines()
    return deadlines
