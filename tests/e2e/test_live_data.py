"""Live data in real Chromium against daphne: the admin, filtered and paginated lists, echo.

One daphne process serves tests/e2e/livedata (the test app's tasks, the admin, a page with
live lists) on the in-memory layer; each test works in projects of its own. Writes from
outside a page go through the REST API with Basic auth, as another client would.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ROOT, daphne_command, free_port, stop, wait_for_port

pytestmark = pytest.mark.e2e

#: Generous: two cores shared with other test runs.
WAIT_MS = 15000


class LiveData:
    """The live-data project: its seeded ids and the daphne serving it."""

    def __init__(self, tmp: Path) -> None:
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.e2e.livedata.settings",
            "LIVEDATA_DB": str(tmp / "livedata.sqlite3"),
        }
        seeded = subprocess.run(
            [sys.executable, "-m", "tests.e2e.livedata.seed"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert seeded.returncode == 0, seeded.stderr
        ids = json.loads(seeded.stdout.strip().splitlines()[-1])
        self.projects: dict[str, int] = ids["projects"]
        self.tasks: dict[str, int] = ids["tasks"]
        self.port = free_port()
        self.http = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            daphne_command("tests.e2e.livedata.asgi:application", self.port), cwd=ROOT, env=self.env
        )
        wait_for_port(self.port, self.process)

    def rest(self, user: str, method: str, path: str, body: dict | None = None) -> dict:
        """A REST request as ``user`` (Basic auth: no session, no window)."""
        token = base64.b64encode(f"{user}:{user}-pass".encode()).decode()
        request = urllib.request.Request(
            self.http + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Basic {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def close(self) -> None:
        stop(self.process)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    project = LiveData(tmp_path_factory.mktemp("livedata"))
    yield project
    project.close()


def live_page(context, site, user: str | None = None):
    """The live page, connected; logs ``user`` in first when given."""
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    if user is not None:
        page.goto(site.http + "/login/?next=/live/")
        page.fill("#id_username", user)
        page.fill("#id_password", f"{user}-pass")
        page.click("button[type=submit]")
        page.wait_for_url(site.http + "/live/")
    else:
        page.goto(site.http + "/live/")
    expect(page.locator("#state")).to_have_text("open", timeout=WAIT_MS)
    return page


def start_list(page, name: str, resource: str, params: dict | None = None) -> None:
    """A live list on the page, subscribed and loaded (so every later change reaches it)."""
    page.evaluate("([n, r, p]) => startList(n, r, {params: p || undefined})", [name, resource, params])
    expect(page.locator(f"#{name} .status")).to_have_text("ready", timeout=WAIT_MS)


def titles(page, name: str):
    return page.locator(f"#{name} li")


def events(page, name: str) -> list[dict]:
    return page.evaluate("(n) => window.events[n]", name)


def test_an_admin_edit_appears_in_another_accounts_list(browser, site):
    ann_context, boss_context = browser.new_context(), browser.new_context()
    ann = live_page(ann_context, site, "ann")
    start_list(ann, "tasks", "tasks", {"project": site.projects["admin"]})
    expect(titles(ann, "tasks")).to_have_text(["Draft"], timeout=WAIT_MS)

    boss = boss_context.new_page()
    boss.set_default_timeout(WAIT_MS)
    change = f"/admin/testapp/task/{site.tasks['draft']}/change/"
    boss.goto(f"{site.http}/admin/login/?next={change}")
    boss.fill("#id_username", "boss")
    boss.fill("#id_password", "boss-pass")
    boss.click("input[type=submit]")
    boss.wait_for_url(site.http + change)
    boss.fill("#id_title", "Edited in the admin")
    boss.click("input[name=_save]")
    boss.wait_for_url(site.http + "/admin/testapp/task/")

    expect(titles(ann, "tasks")).to_have_text(["Edited in the admin"], timeout=WAIT_MS)
    # The admin's save (task and its many-to-many, in one transaction) is one event.
    assert events(ann, "tasks") == [{"action": "updated", "pk": str(site.tasks["draft"]), "echo": False}]
    ann_context.close()
    boss_context.close()


def test_a_filtered_list_hears_only_its_own_projects_tasks(browser, site):
    alpha, beta = site.projects["alpha"], site.projects["beta"]
    context = browser.new_context()
    page = live_page(context, site, "ann")
    start_list(page, "alpha", "tasks", {"project": alpha})
    start_list(page, "everything", "tasks")
    expect(titles(page, "alpha")).to_have_text(["Alpha seed"], timeout=WAIT_MS)

    in_beta = site.rest("ann", "POST", "/api/tasks/", {"project": beta, "title": "In beta"})["id"]
    in_alpha = site.rest("ann", "POST", "/api/tasks/", {"project": alpha, "title": "In alpha"})["id"]
    # Published after the beta task, the alpha task is the marker: the filtered list holds
    # exactly the alpha tasks, so the beta one never reached it.
    expect(titles(page, "alpha")).to_have_text(["Alpha seed", "In alpha"], timeout=WAIT_MS)
    expect(titles(page, "everything").filter(has_text="In beta")).to_have_count(1, timeout=WAIT_MS)
    expect(titles(page, "everything").filter(has_text="In alpha")).to_have_count(1, timeout=WAIT_MS)

    # Moved to beta, the task leaves the filtered list and stays in the unfiltered one.
    site.rest("ann", "PATCH", f"/api/tasks/{in_alpha}/", {"project": beta})
    expect(titles(page, "alpha")).to_have_text(["Alpha seed"], timeout=WAIT_MS)
    expect(page.locator(f'#everything li[data-pk="{in_alpha}"]')).to_have_text("In alpha", timeout=WAIT_MS)
    assert [e["action"] for e in events(page, "alpha")] == ["created", "deleted"]
    assert {e["pk"] for e in events(page, "alpha")} == {str(in_alpha)}
    assert str(in_beta) in {e["pk"] for e in events(page, "everything")}
    context.close()


def test_a_paginated_list_renders_its_page_and_applies_events(browser, site):
    paged = site.projects["paged"]
    context = browser.new_context()
    page = live_page(context, site, "ann")
    start_list(page, "paged", "paged-tasks", {"project": paged})
    expect(titles(page, "paged")).to_have_text(["P1", "P2"], timeout=WAIT_MS)
    expect(page.locator("#paged .count")).to_have_text("3", timeout=WAIT_MS)
    assert page.evaluate("lists.paged.next").startswith(site.http + "/api/paged-tasks/?")

    site.rest("ann", "POST", "/api/tasks/", {"project": paged, "title": "P4"})
    expect(titles(page, "paged")).to_have_text(["P1", "P2", "P4"], timeout=WAIT_MS)
    expect(page.locator("#paged .count")).to_have_text("4", timeout=WAIT_MS)

    # The next page (P3, P4) is merged by pk: P4 is not doubled.
    page.click("#paged .more")
    expect(titles(page, "paged")).to_have_text(["P1", "P2", "P3", "P4"], timeout=WAIT_MS)
    expect(page.locator("#paged .count")).to_have_text("4", timeout=WAIT_MS)
    assert page.evaluate("lists.paged.next") is None
    context.close()


def test_a_pages_own_create_appears_once_marked_echo_only_there(browser, site):
    project = site.projects["echo"]
    context = browser.new_context()
    mine = live_page(context, site, "ann")
    other_tab = live_page(context, site)
    for page in (mine, other_tab):
        start_list(page, "mine", "tasks", {"project": project})

    for title, with_header in (("With the header", True), ("Without the header", False)):
        pk = str(
            mine.evaluate(
                "([p, t, h]) => createTask('mine', p, t, {restHeaders: h})", [project, title, with_header]
            )
        )
        got = "(pk) => window.events.mine.some((e) => e.pk === pk)"
        mine.wait_for_function(got, arg=pk, timeout=WAIT_MS)
        other_tab.wait_for_function(got, arg=pk, timeout=WAIT_MS)
        # Put by the page from its POST response, then the event of that POST: one item.
        assert [e for e in events(mine, "mine") if e["pk"] == pk] == [
            {"action": "created", "pk": pk, "echo": with_header}
        ]
        assert [e for e in events(other_tab, "mine") if e["pk"] == pk] == [
            {"action": "created", "pk": pk, "echo": False}
        ]
        for page in (mine, other_tab):
            expect(page.locator(f'#mine li[data-pk="{pk}"]')).to_have_count(1, timeout=WAIT_MS)
            expect(titles(page, "mine").filter(has_text=title)).to_have_count(1, timeout=WAIT_MS)
    expect(titles(mine, "mine")).to_have_text(["With the header", "Without the header"], timeout=WAIT_MS)
    context.close()
