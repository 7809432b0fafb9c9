"""One event loop per process for the synchronous entry points.

``call()``, ``revoke()``, the REST events flush and ``presence_list``/``presence_count``
are synchronous faces of async code. ``async_to_sync`` outside a server's event loop (WSGI
views, management commands, threads) makes a fresh event loop for every call, and
everything that lives per event loop (channels_redis's connections, floorchannels' own
Redis clients in :mod:`floorchannels.redis_clients`) was made anew each time: a process
that called ``call()`` 1,000 times held 1,000 Redis connections and as many file
descriptors. Here every such call runs on one long-lived loop in a daemon thread, so the
per-loop state is made once and the count of connections stays flat.

Inside a thread that ``sync_to_async`` started (a sync view under ASGI), the server's own
loop is running and already holds those connections: the call goes there, as
``async_to_sync`` does, which also keeps the in-memory layer (not thread-safe) on the loop
that owns it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync, async_to_sync

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_pid: int | None = None


def _server_loop() -> asyncio.AbstractEventLoop | None:
    """The running loop whose ``sync_to_async`` thread this is, if any (asgiref's record)."""
    local = SyncToAsync.threadlocal
    if getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    loop = getattr(local, "main_event_loop", None)
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return loop


def loop() -> asyncio.AbstractEventLoop:
    """The process's background loop, started on first use (and again after a fork: a
    child process inherits the loop object but not the thread that ran it)."""
    global _loop, _thread, _pid
    with _lock:
        if _loop is None or _pid != os.getpid() or _thread is None or not _thread.is_alive():
            new_loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(new_loop)
                new_loop.call_soon(ready.set)
                new_loop.run_forever()

            # A daemon thread: a process that exits never waits for this loop.
            thread = threading.Thread(target=run, name="floorchannels-sync-loop", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread, _pid = new_loop, thread, os.getpid()
        return _loop


def run_sync(func: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
    """Run ``func(*args, **kwargs)`` to completion from synchronous code and return its
    result (or raise its exception).

    Safe from any number of threads at once. Not from a thread whose event loop is
    running: there, await the coroutine function instead.
    """
    server_loop = _server_loop()
    if server_loop is not None:
        return async_to_sync(func)(*args, **kwargs)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            f"{getattr(func, '__name__', func)}() was called synchronously inside a running event "
            "loop: await its async version instead."
        )
    future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(func(*args, **kwargs), loop())
    try:
        return future.result()
    except BaseException:
        # KeyboardInterrupt or SystemExit in the waiting thread: stop the work as well.
        future.cancel()
        raise
