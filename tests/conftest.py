"""Shared fixtures: windows with keys, users with sessions, a fresh channel layer per test."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from floorchannels import BROADCAST, acall, history, metrics, presence, window_key
from tests.asgi import application
from tests.testapp import signals as test_signals

WS_PATH = "/ws/floorchannels/"
POLL_INTERVAL = 0.02


def wait_until(predicate: Callable[[], Any], timeout: float = 10, what: str = "the condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` passes.

    This is how the suite waits for something it cannot be told about directly (a port that
    opens, a process that subscribes, a counter that moves): a deadline, never a guessed
    duration, so a loaded machine only makes the test slower, not red. An exception raised by
    the predicate ends the wait at once (e.g. the process being waited for exited).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(POLL_INTERVAL)


async def await_until(predicate: Callable[[], Any], timeout: float = 10, what: str = "the condition") -> Any:
    """:func:`wait_until` for async tests: ``predicate`` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        await asyncio.sleep(POLL_INTERVAL)


_markers = itertools.count()


@pytest.fixture(autouse=True)
def fresh_layer():
    """A new in-memory layer (and so a new hub) for every test."""
    channel_layers.backends.clear()
    history.reset()
    presence.reset()
    metrics.reset()
    test_signals.ran.clear()
    test_signals.gates.clear()
    yield
    channel_layers.backends.clear()


def make_key(user: Any = None, topics: Any = (), presence: Any = ()) -> str:
    return window_key(SimpleNamespace(user=user or AnonymousUser()), topics=topics, presence=presence)


def session_headers(user: Any) -> list[tuple[bytes, bytes]]:
    """The Cookie header of a browser where ``user`` has logged in."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())]


class Window:
    """A connected test window: a communicator that has said hello."""

    def __init__(self, communicator: WebsocketCommunicator, welcome: dict[str, Any]) -> None:
        self.ws = communicator
        self.welcome = welcome
        self._ids = 0
        self.skipped: list[dict[str, Any]] = []

    async def call(self, signal: str, **kwargs: Any) -> dict[str, Any]:
        self._ids += 1
        await self.ws.send_json_to({"type": "call", "id": self._ids, "signal": signal, "kwargs": kwargs})
        reply = await self.ws.receive_json_from(timeout=5)
        while reply["type"] == "signal":  # signals that were already on their way
            self.skipped.append(reply)
            reply = await self.ws.receive_json_from(timeout=5)
        assert reply["type"] == "reply" and reply["id"] == self._ids, reply
        return reply

    async def receive(self, timeout: float = 2) -> dict[str, Any]:
        return await self.ws.receive_json_from(timeout=timeout)

    async def frame_or_close(self, timeout: float = 5) -> dict[str, Any]:
        """The next output: a decoded frame, or ``{"type": "websocket.close", ...}``."""
        message = await self.ws.receive_output(timeout=timeout)
        if message["type"] == "websocket.send":
            return json.loads(message["text"])
        return message

    async def close(self) -> None:
        await self.ws.disconnect()


async def nothing_before_marker(*windows: Window, timeout: float = 5) -> None:
    """Assert that nothing reached ``windows`` so far, without waiting for a quiet period.

    A marker is published to BROADCAST, after whatever the test expects not to arrive. The
    hub writes one process's layer messages to a socket in the order they were sent, so an
    unwanted frame (or close) would come before the marker: the marker must be each window's
    next frame. A ping round trip then shows the socket is still open (a close spawned while
    handling an earlier message has run by then).
    """
    name = f"test.marker.{next(_markers)}"
    await acall(name, BROADCAST)
    for window in windows:
        frame = await window.frame_or_close(timeout)
        assert frame.get("signal") == name, f"expected nothing before the marker, got {frame}"
        ping = f"marker-ping-{next(_markers)}"
        await window.ws.send_json_to({"type": "ping", "id": ping})
        pong = await window.frame_or_close(timeout)
        assert pong == {"type": "pong", "id": ping}, f"expected the pong, got {pong}"


async def frames_before_marker(*windows: Window, timeout: float = 5) -> list[list[dict[str, Any]]]:
    """For each of ``windows``, the frames that came before a BROADCAST marker published now.

    What was sent to the windows before this call is then all read, without a quiet period:
    the hub writes one process's layer messages to a socket in the order they were sent
    (see :func:`nothing_before_marker`). The marker goes into the broadcast history like any
    message, so publish it only once the test no longer counts that group's positions.
    Resource events go through their own delivery queue and are not ordered by it.
    """
    name = f"test.marker.{next(_markers)}"
    await acall(name, BROADCAST)
    found = []
    for window in windows:
        frames = []
        while (frame := await window.frame_or_close(timeout)).get("signal") != name:
            assert frame["type"] != "websocket.close", f"closed before the marker: {frame}"
            frames.append(frame)
        found.append(frames)
    return found


async def frames_before_pong(window: Window, timeout: float = 5) -> list[dict[str, Any]]:
    """The frames ``window`` received before the answer to a ping sent now.

    The consumer reads the ping only once it has finished what it was writing itself (the
    welcome and its replay come before any other frame is read), so this collects those
    without a quiet period. Layer messages are not ordered with the pong: for them, use
    :func:`frames_before_marker`.
    """
    ping = f"marker-ping-{next(_markers)}"
    await window.ws.send_json_to({"type": "ping", "id": ping})
    frames = []
    while (frame := await window.frame_or_close(timeout)) != {"type": "pong", "id": ping}:
        assert frame["type"] != "websocket.close", f"closed before the pong: {frame}"
        frames.append(frame)
    return frames


async def connect_raw(headers: Any = None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, WS_PATH, headers=headers or [])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def open_window(key: str, headers: Any = None, protocol: int = 1) -> Window:
    communicator = await connect_raw(headers)
    await communicator.send_json_to({"type": "hello", "window_key": key, "protocol": protocol})
    welcome = await communicator.receive_json_from(timeout=5)
    assert welcome["type"] == "welcome", welcome
    return Window(communicator, welcome)


async def expect_close(communicator: WebsocketCommunicator) -> int:
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    return message.get("code")


def pytest_sessionfinish(session, exitstatus):
    """A skipped test is a feature nobody checked: fail the run unless skips are allowed."""
    import os

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and exitstatus == 0 and not os.environ.get("FLOORCHANNELS_ALLOW_SKIPS"):
        reporter.write_line(
            f"{skipped} test(s) skipped: failing (set FLOORCHANNELS_ALLOW_SKIPS=1 to allow).", red=True
        )
        session.exitstatus = 1


#: Debian's Chromium, driven by Playwright (the end-to-end and README tests).
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module; tests open their own contexts in it."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (make test installs Debian's chromium).")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture(autouse=True)
def _browser_contexts_closed(request: pytest.FixtureRequest) -> Iterator[None]:
    """Close the browser contexts a test leaves open, passed or failed: a window that a
    failed test left open would still be online (presence) in the module's next test."""
    browser = request.getfixturevalue("browser") if "browser" in request.fixturenames else None
    yield
    if browser is not None:
        for context in browser.contexts:
            context.close()


def v2_frames(text: str) -> list[Any]:
    """The frames of one protocol 2 websocket message, in order (docs/protocol.md): a frame
    object, a compact signal (an array with a string head), or a batch of those."""
    value = json.loads(text)
    if isinstance(value, list) and value and not isinstance(value[0], str):
        assert all(isinstance(v, dict) or (isinstance(v, list) and isinstance(v[0], str)) for v in value)
        assert len(value) > 1, "a batch of one frame is sent as the frame"
        return value
    return [value]
