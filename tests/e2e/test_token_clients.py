"""Token clients against a real daphne (and uvicorn for close reasons), with the python
``websockets`` client: no cookie, a key from the key view, calls and USER pushes; deleting
a DRF token or a JWT's expiry ends the socket with a readable reason; the session needs its
CSRF token; ALLOWED_ORIGINS compares scheme, host and port.

The project is tests/e2e/tokens (tests.settings plus DRF tokens and SimpleJWT).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.conftest import ROOT, free_port, stop, wait_for_port

pytestmark = pytest.mark.e2e

SETTINGS = "tests.e2e.tokens.settings"
APP = "tests.e2e.tokens.asgi:application"
PASSWORD = "alice-pass"


class TokensProject:
    """The tokens project on its own database, served by daphne or uvicorn."""

    def __init__(self, tmp: Any) -> None:
        self.spa_origin = f"http://127.0.0.1:{free_port()}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "TOKENS_DB": str(tmp / "tokens.sqlite3"),
            "TOKENS_SPA_ORIGIN": self.spa_origin,
        }
        self.processes: list[subprocess.Popen] = []
        self.django("migrate", "-v0")
        self.django(
            "shell",
            "-c",
            f"from django.contrib.auth.models import User; User.objects.create_user('alice', password={PASSWORD!r})",
        )

    def django(self, *args: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr

    def serve(self, server: str) -> str:
        """Start ``server`` on a free port; its base URL once it accepts connections."""
        port = free_port()
        if server == "daphne":
            args = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), APP]
        else:
            args = [
                "-m",
                "uvicorn",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                APP,
            ]
        process = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=self.env)
        self.processes.append(process)
        wait_for_port(port, process)
        return f"127.0.0.1:{port}"

    def close(self) -> None:
        for process in self.processes:
            stop(process)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = TokensProject(tmp_path_factory.mktemp("tokens"))
    project.daphne = project.serve("daphne")
    yield project
    project.close()


def http(
    host: str, path: str, data: dict[str, Any] | None = None, method: str = "POST", **headers: str
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, decoded JSON body or None) of one request."""
    body = urllib.parse.urlencode(data).encode() if data is not None else b""
    request = urllib.request.Request(f"http://{host}{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, got, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, got, raw = error.code, dict(error.headers), error.read()
    return status, got, json.loads(raw) if raw else None


def key_for(host: str, **headers: str) -> dict[str, Any]:
    status, _, body = http(host, "/floorchannels/key/", **headers)
    assert status == 200, body
    return body


async def hello(host: str, key: str, origin: str | None = None) -> Any:
    """A socket that said hello with ``key`` and read its welcome (no cookie, ever)."""
    headers = {"Origin": origin} if origin else {}
    connection = await connect(f"ws://{host}/ws/floorchannels/", additional_headers=headers)
    await connection.send(json.dumps({"type": "hello", "window_key": key, "protocol": 1}))
    welcome = json.loads(await asyncio.wait_for(connection.recv(), 10))
    assert welcome["type"] == "welcome", welcome
    return connection


async def call(connection: Any, signal: str, call_id: int = 1) -> dict[str, Any]:
    await connection.send(json.dumps({"type": "call", "id": call_id, "signal": signal, "kwargs": {}}))
    while True:
        frame = json.loads(await asyncio.wait_for(connection.recv(), 10))
        if frame["type"] == "reply" and frame["id"] == call_id:
            return frame


async def next_signal(connection: Any, name: str) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(connection.recv(), 10))
        if frame.get("signal") == name:
            return frame


async def close_of(connection: Any, timeout: float = 15) -> tuple[int, str]:
    """(code, reason) of the close the server sends next; frames before it are skipped."""
    try:
        while True:
            await asyncio.wait_for(connection.recv(), timeout)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "the server sent no close frame"
        return closed.rcvd.code, closed.rcvd.reason


async def refused(host: str, key: str) -> tuple[int, str]:
    connection = await connect(f"ws://{host}/ws/floorchannels/")
    await connection.send(json.dumps({"type": "hello", "window_key": key, "protocol": 1}))
    return await close_of(connection)


async def test_drf_token_client_calls_gets_pushes_and_is_closed_when_its_token_is_deleted(project):
    host = project.daphne
    status, _, body = http(host, "/api/token/", {"username": "alice", "password": PASSWORD})
    assert status == 200, body
    auth = {"Authorization": f"Token {body['token']}"}
    key = key_for(host, **auth)["window_key"]
    connection = await hello(host, key)
    assert (await call(connection, "t.auth"))["result"] == "alice"
    assert http(host, "/api/push/", **auth)[0] == 204
    assert (await next_signal(connection, "t.pushed"))["kwargs"] == {"to": "alice"}
    # Logging out deletes the token: its socket is closed at once, and its key opens nothing.
    assert http(host, "/api/logout/", **auth)[0] == 204
    reason = "the token this window key was issued for was deleted"
    assert await close_of(connection) == (4403, reason)
    assert await refused(host, key) == (4403, reason)
    assert http(host, "/floorchannels/key/", **auth)[0] == 401


async def test_jwt_client_works_until_its_token_expires_then_gets_4410(project):
    host = project.daphne
    status, _, body = http(host, "/api/jwt/", {"username": "alice", "password": PASSWORD})
    assert status == 200, body
    auth = {"Authorization": f"Bearer {body['access']}"}
    connection = await hello(host, key_for(host, **auth)["window_key"])
    assert (await call(connection, "t.auth"))["result"] == "alice"
    assert http(host, "/api/push/", **auth)[0] == 204
    assert (await next_signal(connection, "t.pushed"))["kwargs"] == {"to": "alice"}
    await connection.close()

    status, _, short = http(host, "/api/jwt/", {"username": "alice", "password": PASSWORD, "seconds": 4})
    issued = key_for(host, Authorization=f"Bearer {short['access']}")
    assert issued["expires"] == short["exp"]
    connection = await hello(host, issued["window_key"])
    reason = "the token this window key was issued for has expired"
    assert await close_of(connection) == (4410, reason)
    assert time.time() >= short["exp"] - 0.1
    assert await refused(host, issued["window_key"]) == (4410, reason)


async def test_session_key_request_without_csrf_token_is_refused(project):
    host = project.daphne
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    data = urllib.parse.urlencode({"username": "alice", "password": PASSWORD}).encode()
    opener.open(f"http://{host}/login/", data=data, timeout=30).read()
    with pytest.raises(urllib.error.HTTPError) as error:
        opener.open(urllib.request.Request(f"http://{host}/floorchannels/key/", data=b""), timeout=30)
    assert error.value.code == 403
    assert "CSRF" in json.loads(error.value.read())["detail"]


async def test_allowed_origins_compare_scheme_host_and_port(project):
    host = project.daphne
    key = key_for(host)["window_key"]
    listed = project.spa_origin
    connection = await hello(host, key, origin=listed)
    assert (await call(connection, "t.echo"))["ok"]
    await connection.close()
    other_port = f"http://127.0.0.1:{free_port()}"
    for origin in (other_port, "http://127.0.0.1", listed.replace("http:", "https:"), f"http://{host}"):
        with pytest.raises(InvalidStatus) as error:
            await connect(f"ws://{host}/ws/floorchannels/", additional_headers={"Origin": origin})
        assert error.value.response.status_code == 403, origin
    # The key view lets the listed origin read its answer, and only it.
    _, headers, _ = http(host, "/floorchannels/key/", Origin=listed)
    assert headers.get("Access-Control-Allow-Origin") == listed
    _, headers, _ = http(host, "/floorchannels/key/", Origin=other_port)
    assert "Access-Control-Allow-Origin" not in headers
    status, headers, _ = http(
        host,
        "/floorchannels/key/",
        method="OPTIONS",
        Origin=listed,
        **{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"},
    )
    assert status == 204 and headers["Access-Control-Allow-Origin"] == listed
    assert "authorization" in headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
async def test_close_reasons_reach_the_client(project, server):
    host = project.daphne if server == "daphne" else project.serve("uvicorn")
    assert await refused(host, "not-a-key") == (4401, "invalid window key: bad signature")
    key = key_for(host)["window_key"]
    first = await hello(host, key)
    second = await hello(host, key)
    assert await close_of(first) == (4409, "replaced by a newer connection of this window")
    assert (await call(second, "t.echo"))["ok"]
    await second.close()
