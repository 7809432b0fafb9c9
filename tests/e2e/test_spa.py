"""A single-page app in Chromium, served from another origin than the Django API (daphne).

The app (tests/e2e/spa/static) holds a DRF token, gets its window keys from the key view
with it (``connect({keyUrl, keyRequest})``), calls a signal, receives pushes to its user
and live events of the notes API. An origin the server does not list in ALLOWED_ORIGINS
gets nothing. A tab that outlives its key while the server is down reconnects through
``getWindowKey`` and resumes: every push published meanwhile arrives, once; so does a page
Django renders, through its config's ``key_url`` and the session. A tab whose key another
tab took over (4409) goes on as a new window.

The project is tests/e2e/spa (tests.settings, DRF tokens, a Redis layer of its own).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.e2e.conftest import ROOT, Redis, daphne_command, free_port, stop, wait_for_port

pytestmark = pytest.mark.e2e

APP = "tests.e2e.spa.asgi:application"
STATIC = Path(__file__).parent / "spa" / "static"
BUNDLE = ROOT / "floorchannels" / "static" / "floorchannels" / "floorchannels.js"
#: Generous: two cores shared with other test runs.
WAIT = 20
WAIT_MS = WAIT * 1000


class SpaProject:
    """The API (daphne, on a port it keeps across restarts) and two static origins serving
    the app: one listed in ALLOWED_ORIGINS, one not."""

    def __init__(self, tmp: Path, redis_url: str, key_max_age: int) -> None:
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        site = tmp / "site"
        shutil.copytree(STATIC, site)
        shutil.copy(BUNDLE, site / "floorchannels.js")
        self.processes: list[subprocess.Popen] = []
        self.origin = self._static(site)
        self.other_origin = self._static(site)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.e2e.spa.settings",
            "SPA_DB": str(tmp / "spa.sqlite3"),
            "SPA_REDIS_URL": redis_url,
            "SPA_ORIGINS": f"{self.origin} {self.api}",
            "SPA_KEY_MAX_AGE": str(key_max_age),
        }
        self.run("-m", "django", "migrate", "-v0")
        self.token = self.run("-m", "tests.e2e.spa.seed").strip().splitlines()[-1]
        self.daphne: subprocess.Popen | None = None

    def _static(self, directory: Path) -> str:
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                str(port),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        wait_for_port(port, process)
        return f"http://127.0.0.1:{port}"

    def run(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def start(self) -> None:
        self.daphne = subprocess.Popen(
            daphne_command(APP, self.port),
            cwd=ROOT,
            env=self.env,
        )
        self.processes.append(self.daphne)
        wait_for_port(self.port, self.daphne)

    def stop_api(self) -> None:
        stop(self.daphne)

    def publish(self, *numbers: int) -> None:
        """Push ``spa.pushed`` to alice's windows from a process of its own."""
        self.run("-m", "tests.e2e.spa.publish", "alice", *map(str, numbers))

    def rest(self, method: str, path: str, body: dict | None = None) -> Any:
        request = urllib.request.Request(
            self.api + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return json.load(response)

    def app_url(self, origin: str, **extra: str) -> str:
        fragment = "&".join(f"{k}={v}" for k, v in {"api": self.api, "token": self.token, **extra}.items())
        return f"{origin}/index.html#{fragment}"

    def close(self) -> None:
        for process in self.processes:
            stop(process)


@pytest.fixture(scope="module")
def spa_redis():
    """A Redis server of this module's own: the history of alice's group is this test's only."""
    server = Redis()
    yield server
    server.stop()


@pytest.fixture
def make_project(tmp_path, spa_redis):
    projects: list[SpaProject] = []

    def make(key_max_age: int = 3600) -> SpaProject:
        # A database per project: flush Redis so no history of an earlier project's alice remains.
        import redis as redis_lib

        redis_lib.Redis.from_url(spa_redis.url).flushall()
        project = SpaProject(tmp_path / f"p{len(projects)}", spa_redis.url, key_max_age)
        projects.append(project)
        project.start()
        return project

    yield make
    for project in projects:
        project.close()


def spa_state(page: Any) -> dict[str, Any]:
    return page.evaluate(
        "({...window.spa, state: window.spaClient.state, keyExpires: window.spaClient.keyExpires})"
    )


def wait_for(page: Any, expression: str) -> None:
    page.wait_for_function(expression, timeout=WAIT_MS)


def test_an_app_on_another_origin_gets_its_key_with_a_token_and_works(browser, make_project):
    project = make_project()
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(project.app_url(project.origin))

    # The key came from the key view (the page has no config), the socket went to the API.
    wait_for(page, "window.spa.user === 'alice'")
    state = spa_state(page)
    assert state["state"] == "open"
    assert [r["source"] for r in state["refreshes"]] == ["getWindowKey"]
    assert page.evaluate("window.spaClient.url") == f"ws://127.0.0.1:{project.port}/ws/floorchannels/"
    assert page.evaluate("document.getElementById('user').textContent") == "alice"

    # Pushes to the user, and live events of the notes API.
    project.publish(1, 2)
    wait_for(page, "window.spa.pushes.length === 2")
    created = project.rest("POST", "/api/notes/", {"text": "from the API"})
    wait_for(page, "window.spa.notes.length === 1")
    project.rest("PATCH", f"/api/notes/{created['id']}/", {"text": "edited"})
    wait_for(page, "window.spa.notes.length === 2")
    state = spa_state(page)
    assert state["pushes"] == [1, 2]
    assert state["notes"] == [
        {"action": "created", "text": "from the API"},
        {"action": "updated", "text": "edited"},
    ]
    assert state["disconnects"] == [] and state["keyErrors"] == [] and errors == []
    context.close()


def test_an_origin_not_listed_gets_no_key_and_no_socket(browser, make_project):
    project = make_project()
    context = browser.new_context()
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))

    # The key view answers without CORS headers for it: the browser withholds the answer.
    page.goto(project.app_url(project.other_origin))
    wait_for(page, "window.spa.keyErrors.length >= 2")  # asked again, on the backoff schedule
    state = spa_state(page)
    assert state["state"] == "connecting" and state["windows"] == []
    key_view = f"{project.api}/floorchannels/key/"
    assert state["keyErrors"][0] == f"floorchannels: no answer from the key view {key_view}: Failed to fetch"
    assert any("blocked by CORS policy" in text and project.other_origin in text for text in console), console

    # A genuine key, handed over some other way, opens no socket from that origin either.
    request = urllib.request.Request(
        key_view, method="POST", data=b"", headers={"Authorization": f"Token {project.token}"}
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        key = json.load(response)["window_key"]
    page.goto("about:blank")
    page.goto(project.app_url(project.other_origin, key=key))
    wait_for(page, "window.spa.disconnects.length >= 2")
    state = spa_state(page)
    assert state["windows"] == [] and state["state"] == "connecting"
    assert all(d["code"] == 1006 for d in state["disconnects"]), state["disconnects"]
    assert any("403" in text and "WebSocket" in text for text in console), console
    context.close()


def test_tabs_that_outlived_their_key_renew_it_and_resume(browser, make_project):
    project = make_project(key_max_age=4)
    context = browser.new_context()
    # A: the app; renews its key before reconnecting, as it knows when the key expires.
    # B: the app with a clock an hour behind: it presents the expired key, is told 4410,
    #    then renews.
    # C: a page Django renders for alice's session: renews through the config's key_url,
    #    with the session cookie and the CSRF token.
    tabs = {"A": context.new_page(), "B": context.new_page()}
    tabs["A"].goto(project.app_url(project.origin))
    tabs["B"].goto(project.app_url(project.origin, renewBefore="-3600"))
    session = browser.new_context()
    signed_in = session.request.post(
        project.api + "/login/", form={"username": "alice", "password": "alice-pass"}
    )
    assert signed_in.ok, signed_in.text()
    tabs["C"] = session.new_page()
    tabs["C"].goto(project.api + "/page/")
    config = json.loads(tabs["C"].text_content("#floorchannels-config"))
    assert config["key_url"] == "/floorchannels/key/"
    for page in tabs.values():
        wait_for(page, "window.spaClient && window.spaClient.state === 'open'")
    project.publish(1)
    for page in tabs.values():
        wait_for(page, "window.spa.pushes.length === 1")

    # The API goes away; what is published meanwhile waits in Redis's history.
    project.stop_api()
    for page in tabs.values():
        wait_for(page, "window.spa.disconnects.length >= 1 && window.spaClient.state === 'connecting'")
    project.publish(2, 3, 4)
    expires = max(spa_state(page)["keyExpires"] for page in tabs.values())
    wait_until(lambda: time.time() > expires + 1, WAIT, "the tabs' keys to expire")
    project.start()

    for page in tabs.values():
        wait_for(page, "window.spa.pushes.length >= 4 && window.spaClient.state === 'open'")
    project.publish(5)
    for page in tabs.values():
        wait_for(page, "window.spa.pushes.length >= 5")
    after = {name: spa_state(page) for name, page in tabs.items()}
    for name, state in after.items():
        assert state["pushes"] == [1, 2, 3, 4, 5], (name, state)
        assert state["resyncs"] == [], (name, state)
        assert state["refused"] == [], (name, state)
        # The key was renewed through getWindowKey once the old one had expired: a new
        # window, which the user's pushes sent meanwhile reached all the same.
        assert any(r["source"] == "getWindowKey" and r["at"] > expires for r in state["refreshes"]), (
            name,
            state,
        )
        assert state["windows"][-1] != state["windows"][0], (name, state)
    for name in "AC":
        assert {"code": 4410, "reason": "window key expired"} not in after[name]["disconnects"]
    assert {"code": 4410, "reason": "window key expired"} in after["B"]["disconnects"]
    context.close()
    session.close()


def test_a_duplicated_tab_takes_the_window_and_the_first_goes_on_as_a_new_one(browser, make_project):
    project = make_project()
    context = browser.new_context()
    first = context.new_page()
    first.goto(project.app_url(project.origin))
    wait_for(first, "window.spa.user === 'alice'")
    # A copy of the first tab's key (a duplicated tab, a copied key) in a tab with no hook.
    key = first.evaluate("window.spaClient.windowKey")
    copy = context.new_page()
    copy.goto(project.app_url(project.origin, key=key))
    wait_for(copy, "window.spa.user === 'alice'")
    # The server closed the older socket (4409); the first tab got a key for a new window.
    wait_for(first, "window.spa.windows.length === 2 && window.spaClient.state === 'open'")
    project.publish(1)
    for page in (first, copy):
        wait_for(page, "window.spa.pushes.length >= 1")
    took_over, copied = spa_state(first), spa_state(copy)
    assert took_over["replaced"] == [
        {"code": 4409, "reason": "replaced by a newer connection of this window", "final": False}
    ]
    assert took_over["windows"][1] != took_over["windows"][0] == copied["windows"][0]
    assert [r["source"] for r in took_over["refreshes"]] == ["getWindowKey", "getWindowKey"]
    assert took_over["pushes"] == copied["pushes"] == [1]
    assert copied["replaced"] == [] and copied["state"] == "open"
    context.close()
