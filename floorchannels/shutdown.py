"""Graceful shutdown: on SIGTERM, close every open socket with 4503 ("going away") first.

ASGI servers stop on SIGTERM by dropping connections, which browsers see as an abnormal
close (1006) and retry on their backoff schedule. A "going away" close frame tells the client the
server is leaving on purpose, so it reconnects at once — to another process behind the load
balancer. After closing, the server's own handler runs as before. (The standard 1001 cannot
be used: daphne, through autobahn, lets applications send only 1000 and 3000-4999.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from typing import Any

from .conf import fc_settings
from .protocol import CloseCode
from .topics import BROADCAST_GROUP

logger = logging.getLogger("floorchannels.shutdown")

_installed: set[int] = set()


def install(hub: Any) -> None:
    """Put our handler in front of the current SIGTERM handler, once per event loop."""
    loop = asyncio.get_running_loop()
    if not fc_settings.GRACEFUL_SHUTDOWN or id(loop) in _installed:
        return
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    _installed.add(id(loop))
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm() -> None:
        sockets = list(hub.groups.get(BROADCAST_GROUP, ()))
        logger.warning("SIGTERM: closing %d socket(s) as going away before stopping.", len(sockets))
        for socket in sockets:
            asyncio.ensure_future(socket.close(CloseCode.GOING_AWAY))
        loop.call_later(fc_settings.SHUTDOWN_GRACE, _chain, previous)

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)


def _chain(previous: Any) -> None:
    signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    if callable(previous):
        previous(signal.SIGTERM, None)
    elif previous != signal.SIG_IGN:
        os.kill(os.getpid(), signal.SIGTERM)
