"""README is a test: its quick start, replayed in a brand-new project, works in a browser.

The wheel is built from this checkout and installed (not editable) in a fresh virtual
environment with the extras README names. README's commands run as written
(``django-admin startproject`` included) and its files are applied as written, following
the convention in :mod:`tests.packaging.readme`. The project is then served by each serving
command README shows (daphne, ``manage.py runserver``) and used in Chromium as README says:
sign in, open two tabs, see a call's result and a push to the user's tabs arrive in both.
README's Redis section is replayed on a copy of the project and served by two processes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import ROOT, Redis, free_port, wait_for_port
from tests.packaging.dist import checkout_copy, venv_env
from tests.packaging.readme import Command, Replay, fenced_blocks, program, section, serves, steps, with_port

README = ROOT / "README.md"
QUICKSTART = ("<!-- --8<-- [start:quickstart] -->", "<!-- --8<-- [end:quickstart] -->")
REDIS_HEADING = "## Several processes: Redis"
DOCS = "https://floorchannels.readthedocs.io/"
TIMEOUT_MS = 30_000  # a loaded 2-core machine: a deadline, not a delay

# The first test also sets up the module's project (a wheel, a venv, pip install from the
# index: ~45 s on a 2-core machine under load), which counts against its timeout.
pytestmark = pytest.mark.timeout(300)


def readme_steps(start: str, end: str | None = None):
    text, first_line = section(README.read_text(), start, end)
    return steps(fenced_blocks(text, first_line))


# -- README's text ------------------------------------------------------------------------------


def test_links_are_absolute_and_name_existing_docs_pages():
    """PyPI renders README without the repository around it: a relative link is a dead link."""
    text = README.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"<(https?://[^>\s]+)>", text)
    assert targets
    relative = [t for t in targets if not t.startswith(("https://", "http://127.0.0.1"))]
    assert not relative, f"README has relative or insecure links: {relative}"
    pages = {t[len(DOCS) :].strip("/") for t in targets if t.startswith(DOCS)}
    assert pages, "README links to no docs page"
    missing = sorted(p for p in pages if not (ROOT / "docs" / f"{p}.md").is_file())
    assert not missing, f"README links to docs pages that do not exist: {missing}"


def test_blocks_outside_the_replayed_sections_are_install_or_contributing_commands():
    """Everything a user must do sits in a section this module replays."""
    text = README.read_text()
    replayed = [section(text, *QUICKSTART)[0], section(text, REDIS_HEADING)[0]]
    for part in replayed:
        text = text.replace(part, "")
    for block in fenced_blocks(text):
        assert block.language == "sh", f"README line {block.line}: a file outside the replayed sections"
        for line in block.text.splitlines():
            words = program(line.split("#")[0]) if line.strip() else []
            assert (
                not words or words[0] == "make" or words[:3] == ["pip", "install", "floorchannels[daphne]"]
            ), f"README line {block.line}: {line!r} is outside the replayed sections"


# -- the replay ---------------------------------------------------------------------------------


def build_wheel(into: Path) -> Path:
    """A wheel of this checkout's files as they are now (``pip wheel``: the quicker build)."""
    source = checkout_copy(into / "source")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(into),
            f"{source}/",
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = into.glob("floorchannels-*.whl")
    return wheel


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Replay:
    """README's quick start done in an empty directory: the commands run, the files written."""
    tmp = tmp_path_factory.mktemp("readme")
    wheel = build_wheel(tmp / "dist")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    home = tmp / "home"
    home.mkdir()
    replay = Replay(home, venv_env(venv), wheel)
    replay.apply(readme_steps(*QUICKSTART))
    return replay


@pytest.fixture(scope="module")
def redis_server() -> Iterator[Redis]:
    server = Redis()
    yield server
    server.stop()


@contextmanager
def serving(command: str, replay: Replay, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """README's serving ``command`` running on a free port; yields its base URL.

    The server runs in its own process group so that ``runserver``'s autoreloader child
    stops with it. Its output is printed if the block fails, next to the failure.
    """
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {with_port(command, port)}"],
            cwd=replay.cwd,
            env=env or replay.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, process, timeout=60)
        yield f"http://127.0.0.1:{port}"
    except BaseException:
        print(f"--- {command} ---\n{log.read_text(errors='replace')[-5000:]}")
        raise
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def account(replay: Replay) -> tuple[str, str]:
    """The username and password README's createsuperuser command gave."""
    (create,) = [
        s.line for s in readme_steps(*QUICKSTART) if isinstance(s, Command) and "createsuperuser" in s.line
    ]
    password = re.search(r"DJANGO_SUPERUSER_PASSWORD=(\S+)", create)
    username = re.search(r"--username[= ](\S+)", create)
    assert password and username, f"README's {create!r} names no username and password"
    return username[1], password[1]


def open_tab(context, url: str, errors: list[str]) -> Page:
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{url}: {error}"))
    page.goto(url)
    return page


def check_page(browser: Browser, replay: Replay, first_url: str, second_url: str) -> None:
    """What README promises: sign in, two tabs, a call's result, a push to both tabs."""
    username, password = account(replay)
    for base in {first_url, second_url}:
        with urllib.request.urlopen(f"{base}/static/floorchannels/floorchannels.js", timeout=30) as bundle:
            assert bundle.status == 200  # the page's client, served as README's asgi.py says

    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    try:
        first = open_tab(context, f"{first_url}/", errors)
        first.fill("#id_username", username)  # LOGIN_URL sent us to the admin's login
        first.fill("#id_password", password)
        first.click("[type=submit]")
        first.wait_for_url(f"{first_url}/")
        second = open_tab(context, f"{second_url}/", errors)
        for tab in (first, second):
            expect(tab.locator("#state")).to_have_text("open", timeout=TIMEOUT_MS)

        first.fill("#a", "19")
        first.fill("#b", "23")
        first.click("#add")
        expect(first.locator("#sum")).to_have_text("42", timeout=TIMEOUT_MS)

        text = f"to every tab {uuid.uuid4().hex[:8]}"
        first.fill("#text", text)
        first.click("#notify")
        for tab in (second, first):
            expect(tab.locator("#notices li")).to_have_text([text], timeout=TIMEOUT_MS)
        assert not errors, errors
    finally:
        context.close()


@pytest.mark.e2e
def test_quick_start_passes_the_system_checks(quickstart):
    """No error and no warning: a new user would see them at every start."""
    result = subprocess.run(
        ["python", "manage.py", "check", "--fail-level", "WARNING"],
        cwd=quickstart.cwd,
        env=quickstart.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout, result.stdout


@pytest.mark.e2e
@pytest.mark.parametrize("server", ["daphne", "runserver"])
def test_quick_start_in_a_browser(quickstart, browser, tmp_path, server):
    (command,) = [c for c in quickstart.servers if server in c]
    with serving(command, quickstart, tmp_path / "server.log") as url:
        check_page(browser, quickstart, url, url)


@pytest.mark.e2e
def test_redis_section_serves_one_user_across_two_processes(quickstart, browser, redis_server, tmp_path):
    """README's Redis settings, on a copy of the quick start: a push crosses processes."""
    project = tmp_path / "home" / quickstart.cwd.name
    shutil.copytree(quickstart.cwd, project)
    replay = Replay(project, quickstart.env, quickstart.wheel)
    servers = replay.apply(readme_steps(REDIS_HEADING))
    assert len(servers) == 2 and all(serves(c) for c in servers), servers
    env = {**replay.env, "REDIS_URL": redis_server.url}  # the variable README's settings read
    with (
        serving(servers[0], replay, tmp_path / "first.log", env) as first,
        serving(servers[1], replay, tmp_path / "second.log", env) as second,
    ):
        check_page(browser, replay, first, second)
