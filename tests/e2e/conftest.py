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
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"{process.args} exited with {process.returncode}")


def daphne_command(app: str, port: int) -> list[str]:
    """The command line serving ``app`` (an ASGI path) under daphne on a loopback port."""
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    def accepts() -> bool:
        alive(process)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(accepts, timeout, f"port {port} to accept connections")


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
        process = self.spawn(*daphne_command("sampleproject.asgi:application", port))
        wait_for_port(port, process)
        return Server(port, process)

    def runworker(self, *channels: str) -> subprocess.Popen:
        """``runworker`` for ``channels``, returned once it listens on every one of them.

        On the pub/sub layer a message sent to a channel nobody has subscribed yet is lost,
        so the worker is ready when Redis counts a subscriber on each channel (PUBSUB
        NUMSUB). The core layer keeps queued messages in Redis until the worker pops them:
        a worker that is still starting only delays them.
        """
        process = self.spawn(sys.executable, "manage.py", "runworker", *channels)
        url = self.env.get("REDIS_URL")
        assert url, "runworker needs REDIS_URL (the in-memory layer runs queues in-process)"
        if self.env.get("REDIS_LAYER") != "core":
            import redis

            client = redis.Redis.from_url(url)

            def subscribed() -> bool:
                alive(process)
                return all(count >= 1 for _name, count in client.pubsub_numsub(*channels))

            try:
                wait_until(subscribed, 30, f"runworker to subscribe to {channels}")
            finally:
                client.close()
        alive(process)
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
    diffs come and go; they are skipped unless ``presence`` is set. Frames that arrive while
    :meth:`call` waits for its reply are kept for :meth:`receive`, never dropped."""

    def __init__(self, connection: Any, welcome: dict[str, Any], presence: bool = False) -> None:
        self.connection = connection
        self.welcome = welcome
        self.ids = 0
        self.presence = presence
        self.pending: deque[dict[str, Any]] = deque()

    async def _next(self, timeout: float) -> dict[str, Any]:
        import asyncio

        while True:
            frame = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
            if self.presence or frame.get("signal") != "fc.presence.diff":
                return frame

    async def receive(self, timeout: float = 5) -> dict[str, Any]:
        if self.pending:
            return self.pending.popleft()
        return await self._next(timeout)

    async def until(
        self, is_marker: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> list[dict[str, Any]]:
        """Every frame before the first one ``is_marker`` accepts (which is consumed).

        The positive way to say "nothing else arrived": send a marker on the same path after
        the frames in question and read up to it. A socket receives in publish order.
        """
        return (await self.through(is_marker, timeout))[:-1]

    async def through(
        self, is_last: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> list[dict[str, Any]]:
        """Every frame up to and including the first one ``is_last`` accepts."""
        import asyncio

        frames = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"nothing accepted within {timeout} s; frames before: {frames[-10:]}")
            frames.append(await self.receive(left))
            if is_last(frames[-1]):
                return frames

    async def call(self, signal: str, **kwargs: Any) -> dict[str, Any]:
        self.ids += 1
        await self.connection.send(
            json.dumps({"type": "call", "id": self.ids, "signal": signal, "kwargs": kwargs})
        )
        held = []
        try:
            while True:
                frame = await self._next(5)
                if frame["type"] == "reply" and frame["id"] == self.ids:
                    return frame
                held.append(frame)
        finally:
            self.pending.extend(held)

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
