"""The protocol's edges against real servers (daphne, uvicorn) and a real Redis.

- a reply whose result is not JSON arrives as a strict-JSON `server_error` reply;
- a broadcast over MAX_MESSAGE_SIZE is refused at publish time, and the largest one allowed
  reaches a socket under daphne through Redis pub/sub (daphne sends no message over 1 MiB);
- resuming at the positions `welcome` gave never resyncs, with the Redis history;
- an invalid UTF-8 text frame ends that socket as docs/security.md says for each server,
  and the server carries on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import subprocess
import sys

import pytest

from bench.client import client_frame
from tests.e2e.conftest import (
    ROOT,
    Browserless,
    Server,
    WsWindow,
    free_port,
    open_ws,
    stop,
    wait_for_port,
)

pytestmark = pytest.mark.e2e


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


async def until_pong(window, ping_id: str = "edge") -> list[dict]:
    """Frames the server sends before answering a ping sent now (the replay, if any, is
    written before the server reads the ping)."""
    await window.connection.send(json.dumps({"type": "ping", "id": ping_id}))
    frames = []
    while True:
        frame = await window.receive(timeout=10)
        if frame["type"] == "pong" and frame.get("id") == ping_id:
            return frames
        frames.append(frame)


@pytest.fixture
def redis_daphne(redis, project_factory):
    project = project_factory(redis.url)
    return project, project.daphne()


# Strict JSON through a real socket -------------------------------------------------------


async def test_an_infinite_result_reaches_the_browser_as_a_strict_json_server_error(redis_daphne):
    _, server = redis_daphne
    window = await open_ws(Browserless(server))
    # demo.add(a: float, b: float): 1e308 + 1e308 is inf in Python.
    await window.connection.send(
        json.dumps({"type": "call", "id": 1, "signal": "demo.add", "kwargs": {"a": 1e308, "b": 1e308}})
    )
    while True:
        text = await asyncio.wait_for(window.connection.recv(), 10)
        frame = strict_json(text)  # a browser's JSON.parse would refuse "Infinity"
        if frame["type"] == "reply":
            break
    assert frame["ok"] is False and frame["error"]["code"] == "server_error", frame
    assert (await window.call("demo.add", a=1, b=2))["result"] == 3
    await window.close()


# MAX_MESSAGE_SIZE under daphne, through Redis pub/sub ------------------------------------

_PUBLISH = """
import json, os, sys, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sampleproject.settings")
django.setup()
from floorchannels import BROADCAST, call
from floorchannels.dispatch import UnsendableSignal

def attempt(n):
    try:
        call("edge.big", BROADCAST, kwargs={"s": "\\u00e9" * n})
        return True
    except UnsendableSignal as exc:
        return str(exc)

low, high = 0, 1_000_000  # 2 bytes a character: high is over any limit below 2 MB
assert attempt(high) is not True
while high - low > 1:
    middle = (low + high) // 2
    if attempt(middle) is True:
        low = middle
    else:
        high = middle
print(json.dumps({"largest": low, "refusal": attempt(low + 1)}))
"""


async def test_the_largest_broadcast_allowed_reaches_a_daphne_socket_and_a_larger_one_is_refused(
    redis_daphne,
):
    from websockets.asyncio.client import connect

    project, server = redis_daphne
    browser = Browserless(server)
    connection = await connect(server.ws, additional_headers=browser.headers(), max_size=None)
    await connection.send(json.dumps({"type": "hello", "window_key": browser.page_key(), "protocol": 1}))
    assert json.loads(await connection.recv())["type"] == "welcome"
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _PUBLISH],
        cwd=ROOT,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert "MAX_MESSAGE_SIZE" in outcome["refusal"]
    largest = outcome["largest"]
    assert largest > 490_000  # about MAX_MESSAGE_SIZE (1,000,000 bytes) of two-byte characters
    # Every publish the search allowed arrives whole, the largest last; nothing is lost.
    sizes = []
    while not sizes or sizes[-1][0] != largest:
        text = await asyncio.wait_for(connection.recv(), 20)
        frame = json.loads(text)
        if frame.get("signal") == "edge.big":
            sizes.append((len(frame["kwargs"]["s"]), len(text.encode())))
    assert max(wire for _, wire in sizes) <= 1_000_000 < 1024 * 1024
    await connection.close()


# Resume at welcome's positions with the Redis history ------------------------------------


async def test_redis_history_resumes_fresh_groups_at_zero_without_resync(redis):
    from floorchannels.history import RedisHistory

    store = RedisHistory(redis.url)
    groups = [f"edge.fresh.{os.urandom(4).hex()}" for _ in range(3)]
    epoch, positions = await store.positions(groups)
    assert set(positions.values()) == {0}
    for group in groups:
        assert await store.since(group, epoch, 0) == []
    await store.append(groups[0], "m1", '{"type":"signal"}')
    assert [e.seq for e in await store.since(groups[0], epoch, 0)] == [1]
    assert await store.since(groups[1], epoch, 0) == []


async def test_reconnecting_at_welcomes_positions_never_resyncs_under_daphne_with_redis(redis_daphne):
    from websockets.asyncio.client import connect

    project, server = redis_daphne
    # Some groups have messages (broadcast), others none yet (this window's own groups).
    project.manage("floorchannels_call", "edge.before", "--broadcast")
    project.manage("floorchannels_call", "edge.before", "--broadcast")
    browser = Browserless(server)
    key = browser.page_key()
    windows = [await open_ws(browser) for _ in range(5)]
    for window in windows:
        await window.close()
    for window in windows:
        connection = await connect(server.ws, additional_headers=browser.headers())
        resume = {"e": window.welcome["e"], "seqs": window.welcome["seqs"]}
        hello = {"type": "hello", "window_key": key, "protocol": 1, "resume": resume}
        await connection.send(json.dumps(hello))
        back = WsWindow(connection, json.loads(await connection.recv()))
        assert back.welcome["type"] == "welcome"
        frames = await until_pong(back)
        assert [f for f in frames if f["type"] == "resync"] == [], frames
        assert [f for f in frames if f["type"] == "signal"] == []
        await back.close()


# Invalid UTF-8 ---------------------------------------------------------------------------


class RawSocket:
    """A websocket on a plain TCP socket: sends what websocket libraries refuse to send."""

    def __init__(self, port: int, path: str = "/ws/floorchannels/") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buffer += chunk

    def send(self, payload: bytes) -> None:
        self.sock.sendall(client_frame(0x1, payload))

    def frame(self) -> tuple[int, bytes]:
        while len(self.buffer) < 2:
            self._fill()
        opcode, length, start = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
        if length == 126:
            while len(self.buffer) < 4:
                self._fill()
            length, start = struct.unpack("!H", self.buffer[2:4])[0], 4
        elif length == 127:
            while len(self.buffer) < 10:
                self._fill()
            length, start = struct.unpack("!Q", self.buffer[2:10])[0], 10
        while len(self.buffer) < start + length:
            self._fill()
        payload, self.buffer = self.buffer[start : start + length], self.buffer[start + length :]
        return opcode, payload

    def close_code(self) -> int:
        """The close code the server sent, as a browser reports it: 1005 for a close frame
        without a code, 1006 when the connection ended without a close frame."""
        try:
            while True:
                opcode, payload = self.frame()
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        except (EOFError, ConnectionResetError):
            return 1006
        finally:
            self.sock.close()


#: What each server does with an invalid UTF-8 text frame (docs/security.md says the same).
UTF8_CLOSE_CODES = {"daphne": 1006, "uvicorn": 1007, "uvicorn-wsproto": 1006}

_SERVERS = {
    "daphne": ["-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "sampleproject.asgi:application"],
    "uvicorn": ["-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--ws", "websockets",
                "sampleproject.asgi:application"],
    "uvicorn-wsproto": ["-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--ws", "wsproto",
                        "sampleproject.asgi:application"],
}  # fmt: skip


@pytest.mark.parametrize("server_name", sorted(UTF8_CLOSE_CODES))
async def test_an_invalid_utf8_frame_closes_as_documented_and_the_server_lives_on(
    server_name, project_factory
):
    project = project_factory()
    port = free_port()
    process = project.spawn(sys.executable, *(a.format(port=port) for a in _SERVERS[server_name]))
    wait_for_port(port, process)
    server = Server(port, process)
    browser = Browserless(server)
    try:
        raw = await asyncio.to_thread(RawSocket, port)
        hello = {"type": "hello", "window_key": browser.page_key(), "protocol": 1}
        raw.send(json.dumps(hello).encode())
        opcode, payload = await asyncio.to_thread(raw.frame)
        assert opcode == 0x1 and json.loads(payload)["type"] == "welcome"
        raw.send(b'{"type":"ping","id":"\xff\xfe"}')
        assert await asyncio.to_thread(raw.close_code) == UTF8_CLOSE_CODES[server_name]
        assert process.poll() is None
        window = await open_ws(browser)  # the server carries on
        assert (await window.call("demo.add", a=2, b=3))["result"] == 5
        await window.close()
    finally:
        stop(process)
