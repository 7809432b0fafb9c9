"""Real processes for end-to-end tests: redis-server, daphne, runworker, manage.py commands.

Every process is started on a free loopback port and stopped by its PID. A missing
redis-server is a failure, not a skip: `make test` installs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Redis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (make test installs it with apt-get).")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.binary = binary
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        stop(self.process)


@pytest.fixture(scope="session")
def redis():
    server = Redis()
    yield server
    server.stop()


class Project:
    """The sample project on its own database, with REDIS_URL when given."""

    def __init__(self, tmp: Path, redis_url: str | None) -> None:
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "sampleproject.settings",
            "DEMO_DB": str(tmp / "db.sqlite3"),
        }
        self.env.pop("REDIS_URL", None)
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.processes: list[subprocess.Popen] = []
        self.manage("migrate", "-v0")
        self.manage("demo_accounts")

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def spawn(self, *args: str) -> subprocess.Popen:
        process = subprocess.Popen(list(args), cwd=ROOT, env=self.env)
        self.processes.append(process)
        return process

    def daphne(self, port: int | None = None) -> Server:
        port = port or free_port()
        process = self.spawn(
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "sampleproject.asgi:application",
        )
        wait_for_port(port, process)
        return Server(port, process)

    def runworker(self, *channels: str) -> subprocess.Popen:
        process = self.spawn(sys.executable, "manage.py", "runworker", *channels)
        time.sleep(1.5)  # runworker has no readiness signal; give it time to subscribe
        assert process.poll() is None
        return process

    def close(self) -> None:
        for process in self.processes:
            stop(process)


class Server:
    def __init__(self, port: int, process: subprocess.Popen) -> None:
        self.port = port
        self.process = process
        self.http = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}/ws/floorchannels/"


@pytest.fixture
def project_factory(tmp_path):
    projects = []

    def make(redis_url: str | None = None) -> Project:
        project = Project(tmp_path / f"p{len(projects)}", redis_url)
        projects.append(project)
        return project

    (tmp_path / "p0").mkdir()
    for i in range(1, 4):
        (tmp_path / f"p{i}").mkdir()
    yield make
    for project in projects:
        project.close()


class Browserless:
    """What a browser does over HTTP: log in, load a page, read its window key."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def login(self, username: str, password: str) -> Browserless:
        page = self.opener.open(self.server.http + "/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": token}
        )
        request = urllib.request.Request(
            self.server.http + "/login/",
            data=data.encode(),
            headers={"Referer": self.server.http + "/login/"},
        )
        self.opener.open(request).read()
        assert any(cookie.name == "sessionid" for cookie in self.jar), "login failed"
        return self

    def page_key(self, server: Server | None = None) -> str:
        html = self.opener.open((server or self.server).http + "/").read().decode()
        config = re.search(r'<script id="floorchannels-config" type="application/json">(.*?)</script>', html)
        return json.loads(config.group(1))["window_key"]

    def headers(self, server: Server | None = None) -> dict[str, str]:
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.jar)
        headers = {"Origin": (server or self.server).http}
        if cookies:
            headers["Cookie"] = cookies
        return headers


class WsWindow:
    """A websocket window. The sample page's windows are present in "chat", so presence
    diffs come and go; they are skipped unless ``presence`` is set."""

    def __init__(self, connection: Any, welcome: dict[str, Any], presence: bool = False) -> None:
        self.connection = connection
        self.welcome = welcome
        self.ids = 0
        self.presence = presence

    async def receive(self, timeout: float = 5) -> dict[str, Any]:
        import asyncio

        while True:
            frame = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
            if self.presence or frame.get("signal") != "fc.presence.diff":
                return frame

    async def signals(self, quiet: float = 0.5) -> list[dict[str, Any]]:
        """Every frame that arrives until the socket has been quiet for ``quiet`` seconds."""

        frames = []
        while True:
            try:
                frames.append(await self.receive(quiet))
            except TimeoutError:
                return frames

    async def call(self, signal: str, **kwargs: Any) -> dict[str, Any]:
        self.ids += 1
        await self.connection.send(
            json.dumps({"type": "call", "id": self.ids, "signal": signal, "kwargs": kwargs})
        )
        while True:
            frame = await self.receive()
            if frame["type"] == "reply" and frame["id"] == self.ids:
                return frame

    async def close(self) -> None:
        await self.connection.close()


async def open_ws(browser: Browserless, server: Server | None = None, presence: bool = False) -> WsWindow:
    from websockets.asyncio.client import connect

    server = server or browser.server
    key = browser.page_key(server)
    connection = await connect(server.ws, additional_headers=browser.headers(server))
    await connection.send(json.dumps({"type": "hello", "window_key": key, "protocol": 1}))
    welcome = json.loads(await connection.recv())
    assert welcome["type"] == "welcome", welcome
    return WsWindow(connection, welcome, presence)
