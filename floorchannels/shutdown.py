"""Graceful shutdown: on SIGTERM, close every open socket with 4503 ("going away") first.

ASGI servers stop on SIGTERM by dropping connections, which browsers see as an abnormal
close (1006) and retry on their backoff schedule. A "going away" close frame tells the client
the server is leaving on purpose, so it reconnects at once — to another process behind the
load balancer. (The standard 1001 cannot be used: daphne, through autobahn, lets
applications send only 1000 and 3000-4999.)

Our handler goes in front of the server's, and ``SHUTDOWN_GRACE`` seconds later hands the
signal on to exactly what would have run without us. Servers install theirs in two ways:

- ``signal.signal`` (daphne through twisted, uvicorn), or nothing (``SIG_DFL``): ours is a
  ``signal.signal`` handler too, and the previous one is put back and called (``SIG_DFL``:
  the signal is raised again, so the process ends as it would have);
- ``loop.add_signal_handler`` (hypercorn, granian's workers): the loop keeps one handler
  per signal, so ours replaces theirs in the loop, and theirs is put back and called. The
  loop's table is private (``loop._signal_handlers``): read in :func:`_loop_handler` only.

Where SIGTERM is ignored (``SIG_IGN``), nothing is installed: the process was told not to
stop, so its windows are not told it is going. Where the handler cannot be chained (set
outside Python, or by a loop whose table cannot be read, such as uvloop's and rloop's),
nothing is installed either and a warning says so: the server then stops as it always did.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from .conf import fc_settings
from .protocol import CloseCode
from .tasks import spawn
from .topics import BROADCAST_GROUP

logger = logging.getLogger("floorchannels.shutdown")

_installed: set[int] = set()
#: Hubs (by id) whose process got SIGTERM: new sockets are closed with 4503.
_stopping: set[int] = set()


def stopping(hub: Any) -> bool:
    """True once this hub's process got SIGTERM (see install)."""
    return id(hub) in _stopping


#: What _loop_handler answers when the loop's handler table cannot be read.
UNREADABLE: Any = object()


def install(hub: Any) -> None:
    """Put our handler in front of the current SIGTERM handler, once per event loop."""
    loop = asyncio.get_running_loop()
    if not fc_settings.GRACEFUL_SHUTDOWN or id(loop) in _installed:
        return
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    _installed.add(id(loop))
    chain = _previous(loop)
    if chain is None:
        return
    on_sigterm = _handler(hub, loop, chain)
    if isinstance(chain, _LoopChain):
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    else:

        def from_signal(signum: int, frame: Any) -> None:
            # A Python signal handler runs between two bytecodes of the main thread, maybe
            # in the middle of the loop's own code: do the work from the loop instead.
            try:
                loop.call_soon_threadsafe(on_sigterm)
            except RuntimeError:  # the loop is closed: nothing left to close gracefully
                chain()

        signal.signal(signal.SIGTERM, from_signal)


def _handler(hub: Any, loop: asyncio.AbstractEventLoop, chain: Callable[[], None]) -> Callable[[], None]:
    state = {"closing": False, "chained": False}

    def chain_once() -> None:
        if not state["chained"]:
            state["chained"] = True
            chain()

    def on_sigterm() -> None:
        if state["closing"]:  # a second SIGTERM: the server stops now
            chain_once()
            return
        state["closing"] = True
        _stopping.add(id(hub))
        sockets = list(hub.groups.get(BROADCAST_GROUP, ()))
        logger.warning("SIGTERM: closing %d socket(s) as going away before stopping.", len(sockets))
        for socket in sockets:
            spawn(socket.close(CloseCode.GOING_AWAY), "close a window on SIGTERM")
        loop.call_later(fc_settings.SHUTDOWN_GRACE, chain_once)

    return on_sigterm


class _LoopChain:
    """Hands SIGTERM back to a handler that was set with ``loop.add_signal_handler``."""

    __slots__ = ("loop", "callback", "args")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], args: tuple) -> None:
        self.loop, self.callback, self.args = loop, callback, args

    def __call__(self) -> None:
        self.loop.add_signal_handler(signal.SIGTERM, self.callback, *self.args)
        self.callback(*self.args)


class _SignalChain:
    """Hands SIGTERM back to a ``signal.signal`` handler, or to the default action."""

    __slots__ = ("previous",)

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self) -> None:
        signal.signal(signal.SIGTERM, self.previous)
        if callable(self.previous):
            self.previous(signal.SIGTERM, None)
        else:  # SIG_DFL: what the signal does unhandled (end the process)
            os.kill(os.getpid(), signal.SIGTERM)


def _previous(loop: asyncio.AbstractEventLoop) -> Callable[[], None] | None:
    """How to run the current SIGTERM handler later; None where we must not take over."""
    found = _loop_handler(loop, signal.SIGTERM)
    if isinstance(found, tuple):
        return _LoopChain(loop, *found)
    current = signal.getsignal(signal.SIGTERM)
    if current == signal.SIG_IGN:
        logger.info("SIGTERM is ignored in this process: no graceful shutdown handler installed.")
        return None
    if current is None or _is_loop_placeholder(current):
        # None: set outside Python. A loop's placeholder with nothing in this loop's table
        # (or a table we cannot read): another loop, or uvloop, owns the handler.
        logger.warning(
            "SIGTERM's handler cannot be chained here (%r): windows are not closed with 4503 "
            "before this server stops. Under uvloop or rloop, run the server on asyncio's loop "
            "(granian: --loop asyncio; see docs/deployment.md).",
            current,
        )
        return None
    return _SignalChain(current)


def _loop_handler(
    loop: asyncio.AbstractEventLoop, signum: int
) -> tuple[Callable[..., Any], tuple] | None | Any:
    """The callback and arguments the loop runs for ``signum`` (None: none; UNREADABLE).

    asyncio's Unix loops keep ``{signum: Handle}`` in ``_signal_handlers``, a private
    attribute (tests/test_shutdown.py fails if that changes).
    """
    handlers = getattr(loop, "_signal_handlers", None)
    if not isinstance(handlers, dict):
        return UNREADABLE
    handle = handlers.get(signum)
    if handle is None:
        return None
    return handle._callback, handle._args


def _is_loop_placeholder(handler: Any) -> bool:
    """The Python-level handler an event loop sets while its own table does the work.

    asyncio's is ``_sighandler_noop``; uvloop's is a bound method of the loop; rloop's (the
    loop granian prefers when it is installed) is ``rloop.utils._noop``. uvloop and rloop
    also learn of the signal from the wakeup fd, whatever Python-level handler is set:
    putting ours in place of theirs would not hold the server's handler back (granian on
    either stopped at once, and most windows never got their 4503).
    """
    if getattr(handler, "__name__", "") == "_sighandler_noop":
        return True
    if str(getattr(handler, "__module__", "")).startswith("rloop."):
        return True
    return isinstance(getattr(handler, "__self__", None), asyncio.AbstractEventLoop)
