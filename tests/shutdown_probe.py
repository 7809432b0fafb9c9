"""Run floorchannels.shutdown in a process of its own, with SIGTERM handled as SCENARIO says.

tests/test_shutdown.py runs ``python -m tests.shutdown_probe SCENARIO`` and reads what it
prints, one event a line, flushed: ``closed 4503`` (a window was closed), ``server`` (the
server's own handler ran), ``installed`` / ``ready``, ``stopping True`` (new sockets are refused) and ``exit``. SIGTERM is sent by the
process to itself once it printed ``ready``, so the test process is never at risk.

Scenarios: ``signal`` (the server set a ``signal.signal`` handler), ``loop`` (it used
``loop.add_signal_handler``), ``default`` (SIG_DFL), ``ignore`` (SIG_IGN), ``off``
(GRACEFUL_SHUTDOWN = False), ``twice`` (a second SIGTERM during the grace period), ``foreign`` (another event loop
holds the handler).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import django
from django.conf import settings

SCENARIO = sys.argv[1]
settings.configure(
    FLOORCHANNELS={
        "SHUTDOWN_GRACE": 0.3 if SCENARIO != "twice" else 30,
        "GRACEFUL_SHUTDOWN": SCENARIO != "off",
    },
    INSTALLED_APPS=[],
)
django.setup()

from floorchannels import shutdown  # noqa: E402
from floorchannels.topics import BROADCAST_GROUP  # noqa: E402


def say(*words: object) -> None:
    print(*words, flush=True)


class Window:
    async def close(self, code: int) -> None:
        say("closed", code)


class Hub:
    def __init__(self) -> None:
        self.groups = {BROADCAST_GROUP: {Window()}}


async def main() -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()

    def server_handler(*args: object) -> None:
        say("server")
        stopped.set()

    if SCENARIO in ("signal", "twice", "off"):
        signal.signal(signal.SIGTERM, server_handler)
    elif SCENARIO == "loop":
        loop.add_signal_handler(signal.SIGTERM, server_handler, "loop-arg")
    elif SCENARIO == "default":
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    elif SCENARIO == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif SCENARIO == "foreign":
        other = asyncio.new_event_loop()  # another loop holds SIGTERM: not ours to chain
        other.add_signal_handler(signal.SIGTERM, server_handler)
    before = signal.getsignal(signal.SIGTERM)
    hub = Hub()
    shutdown.install(hub)
    say(
        "installed",
        "unchanged" if signal.getsignal(signal.SIGTERM) == before and SCENARIO != "loop" else "ours",
    )
    if SCENARIO == "foreign":
        other.remove_signal_handler(signal.SIGTERM)
        other.close()
        say("exit")
        return
    os.kill(os.getpid(), signal.SIGTERM)
    if SCENARIO == "twice":
        await asyncio.sleep(0)  # our handler runs and starts the grace period ...
        os.kill(os.getpid(), signal.SIGTERM)  # ... which a second SIGTERM cuts short
    if SCENARIO == "ignore":
        # There is no event to wait for: with SIG_IGN the kernel discards the signal as it is
        # sent. What would make something happen is a handler in place, so that is checked:
        # still SIG_IGN, none in the loop's table. A handler's call_soon_threadsafe would have
        # run in these loop turns and printed "closed"; its chain (SIG_IGN) ends nothing.
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        assert shutdown._loop_handler(loop, signal.SIGTERM) is None
        for _ in range(3):
            await asyncio.sleep(0)
        say("exit")
        return
    await asyncio.wait_for(stopped.wait(), 10)
    say("stopping", shutdown.stopping(hub))  # new sockets are now closed with 4503
    if SCENARIO == "loop":
        # The loop's handler is the server's again: a later SIGTERM goes straight to it.
        callback, args = shutdown._loop_handler(loop, signal.SIGTERM)
        say("restored", callback is server_handler, args)
    say("exit")


asyncio.run(main())
