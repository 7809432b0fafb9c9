"""floorchannels.shutdown: SIGTERM closes windows with 4503, then reaches the server's handler.

Each scenario runs in a process of its own (tests/shutdown_probe.py), which sends SIGTERM to
itself; the servers themselves are covered end to end in tests/e2e/test_shutdown.py.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import pytest

from floorchannels import shutdown
from tests.e2e.conftest import ROOT


def run(scenario: str) -> tuple[list[str], int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.shutdown_probe", scenario],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout.splitlines(), result.returncode, result.stderr


@pytest.mark.parametrize("scenario", ["signal", "loop"])
def test_windows_are_closed_then_the_servers_handler_runs(scenario):
    lines, code, errors = run(scenario)
    assert code == 0, errors
    assert lines[:4] == ["installed ours", "closed 4503", "server", "stopping True"], (lines, errors)
    if scenario == "loop":
        # The loop's handler was put back: a later SIGTERM goes straight to the server.
        assert "restored True ('loop-arg',)" in lines
    assert lines[-1] == "exit"
    assert "going away before stopping" in errors


def test_with_the_default_action_the_process_still_ends_by_sigterm():
    lines, code, errors = run("default")
    assert lines == ["installed ours", "closed 4503"], (lines, errors)
    assert code == -signal.SIGTERM


def test_an_ignored_sigterm_stays_ignored():
    lines, code, errors = run("ignore")
    assert code == 0, errors
    assert lines == ["installed unchanged", "exit"], (lines, errors)


def test_nothing_is_installed_when_graceful_shutdown_is_off():
    lines, code, errors = run("off")
    assert code == 0, errors
    assert lines == ["installed unchanged", "server", "stopping False", "exit"], (lines, errors)


def test_a_second_sigterm_does_not_wait_for_the_grace_period():
    lines, code, errors = run("twice")  # SHUTDOWN_GRACE is 30 s there
    assert code == 0, errors
    assert lines == ["installed ours", "closed 4503", "server", "stopping True", "exit"], (lines, errors)


def test_a_handler_held_by_another_loop_is_left_alone_with_a_warning():
    lines, code, errors = run("foreign")
    assert code == 0, errors
    assert lines == ["installed unchanged", "exit"], (lines, errors)
    assert "cannot be chained" in errors


async def test_the_loops_signal_table_is_readable():
    """shutdown reads asyncio's private ``loop._signal_handlers``: fail if that changes."""
    loop = asyncio.get_running_loop()

    def handler(*args):
        pass

    assert shutdown._loop_handler(loop, signal.SIGUSR2) is None
    loop.add_signal_handler(signal.SIGUSR2, handler, 1, "two")
    try:
        assert shutdown._loop_handler(loop, signal.SIGUSR2) == (handler, (1, "two"))
        assert shutdown._is_loop_placeholder(signal.getsignal(signal.SIGUSR2))
    finally:
        loop.remove_signal_handler(signal.SIGUSR2)
    assert shutdown._loop_handler(object(), signal.SIGUSR2) is shutdown.UNREADABLE


async def test_a_socket_arriving_after_sigterm_is_refused_unavailable():
    """Between SIGTERM and the server's own stop (the grace period), a new socket is closed
    with 4500 (its client backs off) instead of being welcomed into a process about to exit."""
    from floorchannels.hub import get_hub
    from floorchannels.protocol import CloseCode
    from tests.conftest import connect_raw, make_key

    hub = await get_hub()
    shutdown._stopping.add(id(hub))
    try:
        communicator = await connect_raw()
        await communicator.send_json_to({"type": "hello", "window_key": make_key(), "protocol": 1})
        message = await communicator.receive_output(timeout=5)
        assert (message["code"], message["reason"]) == (CloseCode.UNAVAILABLE, "server shutting down")
    finally:
        shutdown._stopping.discard(id(hub))


def test_uvloops_and_rloops_handlers_are_seen_as_loop_placeholders():
    """uvloop sets a bound method of its loop, rloop ``rloop.utils._noop``: both loops also
    hear the signal through the wakeup fd, so neither handler can be held back (see
    tests/e2e/test_shutdown.py, granian on uvloop). Shapes copied from uvloop 0.23 and
    rloop 0.5; a plain server handler is not mistaken for one."""

    class Loop(asyncio.AbstractEventLoop):  # uvloop.Loop is one too
        def __sighandler(self, signum, frame):  # uvloop's name for it
            pass

    def _noop(signum, frame):
        pass

    _noop.__module__ = "rloop.utils"

    def server_handler(signum, frame):
        pass

    assert shutdown._is_loop_placeholder(Loop()._Loop__sighandler)
    assert shutdown._is_loop_placeholder(_noop)
    assert not shutdown._is_loop_placeholder(server_handler)
