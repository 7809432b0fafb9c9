"""The JS client in real headless Chromium against the sample project under daphne and Redis."""

import json
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ROOT, stop

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "artifacts"
COUNT_SOCKETS = """
window.__fcSockets = 0;
window.__fcSocketTimes = [];
window.__fcMessages = [];
const Native = window.WebSocket;
window.WebSocket = class extends Native {
  constructor(...args) {
    super(...args);
    window.__fcSockets += 1;
    window.__fcSocketTimes.push(performance.now());
    this.addEventListener("message", (event) => window.__fcMessages.push(String(event.data)));
  }
};
"""


def login(context, server, username):
    page = context.new_page()
    page.goto(server.http + "/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-demo-pass")
    page.click("button[type=submit]")
    page.wait_for_url(server.http + "/")
    expect(page.locator("#state")).to_have_text("open")
    return page


def new_tab(context, server):
    page = context.new_page()
    page.add_init_script(COUNT_SOCKETS)
    page.goto(server.http + "/")
    expect(page.locator("#state")).to_have_text("open")
    return page


def open_notes(page, server):
    """The live notes page, once its list is subscribed and loaded.

    The list loads itself (GET /api/notes/) only after the server confirmed the subscription,
    so once that response is in, every later change reaches this page.
    """
    api = server.http + "/api/notes/"
    with page.expect_response(lambda r: r.url == api and r.request.method == "GET") as loaded:
        page.goto(server.http + "/notes/")
    assert loaded.value.ok
    expect(page.locator("#state")).to_have_text("open")


def test_tabs_users_and_broadcast(browser, redis, project_factory):
    project = project_factory(redis.url)
    server = project.daphne()
    project.runworker("floorchannels.slow")
    alice, bob = browser.new_context(), browser.new_context()
    a1 = login(alice, server, "alice")
    a2 = new_tab(alice, server)
    b1 = login(bob, server, "bob")

    # USER: a toast in both of alice's tabs, none in bob's.
    a1.click("#notify-tabs")
    for page in (a1, a2):
        expect(page.locator(".fc-toast")).to_contain_text("Hello from the server")

    # BROADCAST: a chat line reaches all three tabs, once.
    b1.fill("#chat-text", "hi from bob")
    b1.click("#chat-form button")
    for page in (a1, a2, b1):
        expect(page.locator("#chat-log li")).to_have_text(["bob: hi from bob"])
    # Published after alice's toast, the chat line is the marker: bob's tab got no toast before it.
    assert b1.locator(".fc-toast").count() == 0

    # WINDOW: the queued progress task reports to the tab that started it only.
    a2.click("#start-progress")
    expect(a2.locator("#progress-text")).to_have_text("10 / 10", timeout=15000)
    expect(a1.locator("#progress-text")).to_have_text("")
    expect(b1.locator("#progress-text")).to_have_text("")

    # A reply shows on the page; a forbidden call shows its code.
    a1.fill("input[name=a]", "2")
    a1.fill("input[name=b]", "3")
    a1.click("#add-form button")
    expect(a1.locator("#add-result")).to_have_text("5")
    a1.click("#staff-only")
    expect(a1.locator("#staff-result")).to_have_text("forbidden")

    ARTIFACTS.mkdir(exist_ok=True)
    a1.screenshot(path=str(ARTIFACTS / "sample-page.png"), full_page=True)
    alice.close()
    bob.close()


def test_page_reconnects_after_daphne_restarts(browser, redis, project_factory):
    project = project_factory(redis.url)
    server = project.daphne()
    context = browser.new_context()
    page = new_tab(context, server)
    assert page.evaluate("window.__fcSockets") == 1

    stop(server.process)
    expect(page.locator("#state")).not_to_have_text("open", timeout=10000)
    # Three attempts against the closed port. The first may come at once (the server said it
    # was going away); each later one waits at least the backoff's least delay (0.5 s).
    page.wait_for_function("window.__fcSockets >= 4", timeout=30000)
    times = page.evaluate("window.__fcSocketTimes")
    gaps = [later - earlier for earlier, later in zip(times[1:], times[2:], strict=False)]
    assert min(gaps) >= 490, gaps  # backing off, not hammering the port
    attempts_while_down = page.evaluate("window.__fcSockets") - 1
    server = project.daphne(port=server.port)
    expect(page.locator("#state")).to_have_text("open", timeout=30000)

    project.manage(
        "floorchannels_call", "chat.message", "--broadcast", "--kwargs", '{"author": "ops", "text": "back"}'
    )
    expect(page.locator("#chat-log li")).to_have_text(["ops: back"])
    total = page.evaluate("window.__fcSockets")
    assert re.match(r"\d+", str(total)) and total <= attempts_while_down + 3
    context.close()


def test_the_page_speaks_protocol_2(browser, redis, project_factory):
    """The bundled client says hello for protocol 2 and is served compact signals."""
    project = project_factory(redis.url)
    server = project.daphne()
    context = browser.new_context()
    page = new_tab(context, server)
    project.manage(
        "floorchannels_call", "chat.message", "--broadcast", "--kwargs", '{"author": "ops", "text": "v2"}'
    )
    expect(page.locator("#chat-log li")).to_have_text(["ops: v2"])
    messages = [json.loads(m) for m in page.evaluate("window.__fcMessages")]
    welcome = next(m for m in messages if isinstance(m, dict) and m.get("type") == "welcome")
    assert welcome["protocol"] == 2
    [chat] = [m for m in messages if isinstance(m, list) and m[0] == "chat.message"]
    assert chat[1] == {"author": "ops", "text": "v2"} and isinstance(chat[3], int)
    assert not any(isinstance(m, dict) and m.get("type") == "signal" for m in messages)
    context.close()


def test_live_notes_reach_only_allowed_accounts(browser, redis, project_factory):
    project = project_factory(redis.url)
    server = project.daphne()
    alice_context, bob_context = browser.new_context(), browser.new_context()
    alice, bob = login(alice_context, server, "alice"), login(bob_context, server, "bob")
    for page in (alice, bob):
        open_notes(page, server)

    alice.fill("#note-text", "alice's secret")
    alice.click("#note-form button")
    expect(alice.locator("#notes li .text")).to_have_text(["alice's secret"])

    alice.fill("#note-text", "for everyone")
    alice.check("#note-shared")
    alice.click("#note-form button")
    expect(alice.locator("#notes li .text")).to_have_text(["for everyone", "alice's secret"])
    expect(bob.locator("#notes li .text")).to_have_text(["for everyone"])

    # Bob deletes nothing of alice's (read-only for him); alice deletes the shared note.
    alice.locator("#notes li", has_text="for everyone").get_by_role("button", name="Delete").click()
    expect(bob.locator("#notes li")).to_have_count(0)
    expect(alice.locator("#notes li .text")).to_have_text(["alice's secret"])
    # A last shared note is the marker: bob's list holds exactly that, so the private note,
    # created before it, never showed.
    alice.fill("#note-text", "marker")
    alice.check("#note-shared")
    alice.click("#note-form button")
    expect(bob.locator("#notes li .text")).to_have_text(["marker"])
    alice_context.close()
    bob_context.close()


def test_live_list_catches_up_after_the_network_is_cut(browser, redis, project_factory):
    project = project_factory(redis.url)
    server = project.daphne()
    alice_context, bob_context = browser.new_context(), browser.new_context()
    alice, bob = login(alice_context, server, "alice"), login(bob_context, server, "bob")

    cut = {"on": False, "routes": []}

    def route(ws):
        if cut["on"]:
            ws.close(code=4000, reason="network cut")
            return
        ws.connect_to_server()
        cut["routes"].append(ws)

    alice.route_web_socket(re.compile(r".*/ws/floorchannels/"), route)
    for page in (alice, bob):
        open_notes(page, server)

    cut["on"] = True
    for ws in cut["routes"]:
        ws.close(code=4000, reason="network cut")
    expect(alice.locator("#state")).to_have_text("connecting")
    for text in ("one", "two", "three"):  # bob shares notes while alice is offline
        bob.fill("#note-text", text)
        bob.check("#note-shared")
        bob.click("#note-form button")
        expect(bob.locator("#notes li .text", has_text=text)).to_have_count(1)
    # Really offline: every attempt since the cut was refused by the route, so none of these
    # could arrive live (the list below is caught up by the reconnect).
    assert len(cut["routes"]) == 1
    expect(alice.locator("#state")).to_have_text("connecting")
    expect(alice.locator("#notes li")).to_have_count(0)

    cut["on"] = False
    expect(alice.locator("#state")).to_have_text("open", timeout=30000)
    expect(alice.locator("#notes li .text")).to_have_text(["three", "two", "one"])
    alice_context.close()
    bob_context.close()


def test_who_is_online_on_the_chat(browser, redis, project_factory):
    project = project_factory(redis.url)
    server = project.daphne()
    alice_context, bob_context = browser.new_context(), browser.new_context()
    alice = login(alice_context, server, "alice")
    expect(alice.locator("#online")).to_have_text("alice")
    alice_tab2 = new_tab(alice_context, server)
    bob = login(bob_context, server, "bob")
    for page in (alice, alice_tab2, bob):
        expect(page.locator("#online")).to_have_text("alice (2 tabs), bob")
    bob_context.close()
    expect(alice.locator("#online")).to_have_text("alice (2 tabs)")
    alice_context.close()
