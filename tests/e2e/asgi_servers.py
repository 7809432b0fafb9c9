"""Start the test application (tests/e2e/slow_asgi.py) under each supported ASGI server.

Used by the slow-client and SIGTERM tests. Every server listens on a free loopback port and
is stopped by its PID; its stderr goes to a file the test can read (floorchannels logs there).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bench.client import client_frame
from tests.e2e.conftest import ROOT, free_port, stop

APP = "tests.e2e.slow_asgi:application"

#: Server name -> the command line that serves APP on a port.
COMMANDS = {
    "daphne": lambda port: ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), APP],
    "uvicorn": lambda port: ["-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--ws", "websockets", APP],
    "uvicorn-wsproto": lambda port: ["-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--ws", "wsproto", APP],
    "uvicorn-sansio": lambda port: [
        "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--ws", "websockets-sansio", APP,
    ],
    "hypercorn": lambda port: ["-m", "hypercorn", "--workers", "0", "-b", f"127.0.0.1:{port}", APP],
    # granian picks rloop, then uvloop, when installed (--loop auto): the loop is named.
    "granian": lambda port: [
        "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
        "--loop", "asyncio", APP,
    ],
    "granian-uvloop": lambda port: [
        "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", APP,
    ],
}  # fmt: skip

#: The module each server needs; a server that is not installed is skipped, not failed.
MODULES = {
    "uvicorn-wsproto": "wsproto",
    "hypercorn": "hypercorn",
    "granian": "granian",
    "granian-uvloop": "uvloop",
}


class AsgiServer:
    def __init__(self, name: str, tmp: Path, env: dict[str, str] | None = None) -> None:
        module = MODULES.get(name)
        if module:
            pytest.importorskip(module)
        self.name = name
        self.port = free_port()
        self.http = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/ws/floorchannels/"
        self.log_path = tmp / f"{name}-{self.port}.log"
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.e2e.slow_settings", **(env or {})}
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, *COMMANDS[name](self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        """Poll ``/stats`` until the application answers (the port may open before it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")
            try:
                self.get("/stats", timeout=1)
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not answer on port {self.port}:\n{self.output()}")

    def get(self, path: str, timeout: float = 10) -> Any:
        with urllib.request.urlopen(self.http + path, timeout=timeout) as response:
            body = response.read().decode()
        return json.loads(body) if response.headers.get("content-type") == "application/json" else body

    def post(self, path: str, timeout: float = 120) -> Any:
        request = urllib.request.Request(self.http + path, data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode())

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        """PIDs of the server's worker processes (granian's worker is a child process)."""
        pids = []
        for task in Path(f"/proc/{self.process.pid}/task").glob("*"):
            try:
                pids += [int(pid) for pid in (task / "children").read_text().split()]
            except OSError:
                pass
        return pids

    def close(self) -> None:
        workers = self.children() if self.process.poll() is None else []
        stop(self.process)
        for pid in workers:  # a worker whose parent was killed would be left running
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


def hello_frame(key: str) -> bytes:
    return json.dumps({"type": "hello", "window_key": key, "protocol": 1}).encode()


class RawWindow:
    """A websocket window on a plain TCP socket, so the test decides when (if ever) to read.

    The receive buffer is made small before connecting, so the kernel holds little of what
    the server sends: what the client does not read stays on the server's side.
    """

    def __init__(self, port: int, key: str, rcvbuf: int | None = 4096) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:  # None: the kernel's own (autotuned) buffer, for a reader
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        nonce = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws/floorchannels/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the server closed the handshake")
            received += chunk
        head, rest = received.split(b"\r\n\r\n", 1)
        self.buffer, self.pos = bytearray(rest), 0
        assert head.startswith(b"HTTP/1.1 101"), head
        self.sock.sendall(client_frame(0x1, hello_frame(key)))
        opcode, payload = self.frame()
        assert opcode == 0x1 and json.loads(payload)["type"] == "welcome", payload

    def _fill(self, size: int) -> None:
        """Have at least ``size`` unread bytes at ``self.pos``."""
        while len(self.buffer) - self.pos < size:
            if self.pos:  # drop what was read, once per receive (not once per frame)
                del self.buffer[: self.pos]
                self.pos = 0
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError
            self.buffer += chunk

    def frame(self) -> tuple[int, bytes]:
        """The next whole frame from the server (servers do not mask)."""
        self._fill(2)
        buffer, pos = self.buffer, self.pos
        opcode, length = buffer[pos] & 0x0F, buffer[pos + 1] & 0x7F
        offset = 2
        if length == 126:
            self._fill(4)
            buffer, pos = self.buffer, self.pos
            length, offset = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            self._fill(10)
            buffer, pos = self.buffer, self.pos
            length, offset = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
        self._fill(offset + length)
        start = self.pos + offset
        payload = bytes(self.buffer[start : start + length])
        self.pos = start + length
        return opcode, payload

    def drain(self, timeout: float = 20) -> tuple[int, int | None]:
        """Read everything until the server ends the connection.

        Returns (text frames read, close code or None when the connection ended without a
        close frame: EOF or a reset).
        """
        self.sock.settimeout(timeout)
        frames = 0
        try:
            while True:
                opcode, payload = self.frame()
                if opcode == 0x8:
                    return frames, int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                frames += opcode == 0x1
        except (EOFError, ConnectionResetError):
            return frames, None

    def close(self) -> None:
        self.sock.close()
