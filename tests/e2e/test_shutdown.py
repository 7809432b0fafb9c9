"""SIGTERM under every supported server: open windows are closed with 4503, and the server
still stops (our handler runs first, then the server's own, however it installed it)."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from asgiref.sync import sync_to_async

from tests.e2e.asgi_servers import AsgiServer

pytestmark = pytest.mark.e2e

#: How long a server may take to stop after SIGTERM (SHUTDOWN_GRACE is 0.5 s).
DEADLINE = 15


@pytest.mark.parametrize("name", ["daphne", "uvicorn", "hypercorn", "granian"])
async def test_sigterm_closes_windows_with_going_away_and_the_server_stops(name, tmp_path):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    server = await sync_to_async(AsgiServer)(name, tmp_path)
    try:
        windows = []
        for _ in range(2):
            key = await sync_to_async(server.get)("/key")
            connection = await connect(server.ws)
            await connection.send(json.dumps({"type": "hello", "window_key": key, "protocol": 1}))
            assert json.loads(await connection.recv())["type"] == "welcome"
            windows.append(connection)
        server.process.send_signal(signal.SIGTERM)
        for connection in windows:
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await connection.recv()
            assert closed.value.rcvd is not None, f"{name} dropped the socket without a close frame"
            assert closed.value.rcvd.code == 4503
        try:
            await sync_to_async(server.process.wait)(DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} was still running {DEADLINE} s after SIGTERM:\n{server.output()}")
        assert "going away before stopping" in server.output()
    finally:
        server.close()


async def test_granian_on_uvloop_is_not_held_back_and_says_so(tmp_path):
    """uvloop hears SIGTERM through its wakeup fd whatever Python handler is set: granian's
    worker stops at once, so floorchannels must not pretend to give its windows a grace
    period (it did: most windows were dropped without a close frame, silently). It warns,
    naming the way out (``--loop asyncio``), and granian stops as it would without it."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    server = await sync_to_async(AsgiServer)("granian-uvloop", tmp_path)
    try:
        key = await sync_to_async(server.get)("/key")
        connection = await connect(server.ws)
        await connection.send(json.dumps({"type": "hello", "window_key": key, "protocol": 1}))
        assert json.loads(await connection.recv())["type"] == "welcome"
        server.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            while True:
                await connection.recv()
        try:
            await sync_to_async(server.process.wait)(DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"granian was still running {DEADLINE} s after SIGTERM:\n{server.output()}")
        output = server.output()
        assert "cannot be chained" in output and "--loop asyncio" in output, output
        assert "going away before stopping" not in output, output
    finally:
        server.close()
