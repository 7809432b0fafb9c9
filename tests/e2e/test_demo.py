"""The demo as a visitor meets it: two accounts in real Chromium against the sample project
under daphne. What each test asserts is what the visitor sees on the page."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from sampleproject.screenshots import PHONE, sign_in
from tests.conftest import wait_until
from tests.e2e.conftest import ROOT, Project

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "artifacts"
#: The narrowest phone the demo promises to fit, in CSS pixels.
NARROW = {"width": 375, "height": 812}
NO_OVERFLOW = "document.scrollingElement.scrollWidth <= window.innerWidth"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The sample project under one daphne, on the in-memory layer, shared by this module's
    tests (each starts its own browser contexts; none depends on another's notes)."""
    project = Project(tmp_path_factory.mktemp("demo"), None)
    try:
        yield project.daphne()
    finally:
        project.close()


def frames(page, direction: str):
    return page.locator(f"#frame-log li[data-direction={direction}] .frame-body")


def documented_error_codes() -> list[str]:
    """The codes of docs/protocol.md's error table."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    table = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE)


def test_frame_log_shows_the_socket_and_stays_bounded(browser, server):
    context = browser.new_context()
    # Every websocket message of the page, both ways, as Chromium saw it: the log's count
    # is checked against this.
    seen: list[str] = []

    def message(payload) -> None:
        seen.append(payload)

    def socket(ws) -> None:
        ws.on("framesent", message)
        ws.on("framereceived", message)

    context.on("page", lambda page: page.on("websocket", socket))
    alice = sign_in(context, server.http, "alice")

    # The hello went out and the welcome came in, as the first frames of this socket.
    expect(frames(alice, "out").last).to_contain_text('"type":"hello"')
    expect(frames(alice, "in").last).to_contain_text('"type":"welcome"')
    window_id = alice.evaluate("window.demo.client.windowId")
    expect(alice.locator("[data-window-id]")).to_have_text(window_id[:8])

    alice.click("#add-form button")
    expect(alice.locator("#add-result")).to_have_text("5")
    call = frames(alice, "out").filter(has_text='"signal":"demo.add","kwargs":{"a":2,"b":3}')
    expect(call).to_have_count(1)
    call_id = json.loads(call.inner_text())["id"]
    reply = f'{{"type":"reply","id":{call_id},"ok":true,"result":5}}'
    expect(frames(alice, "in").filter(has_text=reply)).to_have_count(1)

    # Slow tasks of up to 100 progress steps each until the log has had more than 150
    # lines: it keeps the newest 150 (the hello has gone) and counts them all. How many
    # tasks that takes depends on the machine: steps that reach the server's hub together
    # leave as one websocket message (docs/protocol.md, batches). Each task has its own
    # step count, so that its last step is seen on the page.
    for steps in range(100, 90, -1):
        alice.evaluate(f"window.demo.client.call('demo.progress', {{steps: {steps}, delay: 0}})")
        expect(alice.locator("#progress-text")).to_have_text(f"{steps} / {steps}", timeout=30000)
        if len(seen) > 150:
            break
    expect(alice.locator("#frame-log li")).to_have_count(150)
    expect(frames(alice, "out").filter(has_text='"type":"hello"')).to_have_count(0)
    # The count is every line ever logged: the socket's messages and its "open" line.
    # (Reading the page also lets Playwright report the frames it has seen meanwhile.)
    wait_until(
        lambda: int(alice.locator("#frame-count").inner_text()) == len(seen) + 1,
        what="the log's count to match the socket's messages",
    )
    context.close()


def test_a_second_window_opens_beside_the_first(browser, server):
    context = browser.new_context()
    alice = sign_in(context, server.http, "alice")
    expect(alice.locator("#online")).to_have_text("alice")
    with context.expect_page() as opened:
        alice.get_by_role("button", name="Open this page in a new window").click()
    second = opened.value
    assert second.evaluate("window.opener !== null") or second.url == alice.url
    expect(second.locator("#state")).to_have_text("open")
    for page in (alice, second):
        expect(page.locator("#online")).to_have_text("alice (2 tabs)")
    ids = [page.locator("[data-window-id]").inner_text() for page in (alice, second)]
    assert ids[0] != ids[1] and all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids), ids
    # The invitation names the other account and how to reach it.
    expect(alice.locator(".invite")).to_contain_text("sign in as bob / bob-demo-pass")
    context.close()


def test_error_replies_read_as_sentences(browser, server):
    context = browser.new_context()
    alice = sign_in(context, server.http, "alice")

    cases = [
        ("#staff-only", "#staff-error", "forbidden", "Your account is not allowed to do that."),
        ("#unknown-signal", "#unknown-error", "unknown_signal", "The server has no signal by that name."),
        (
            "#bad-arguments",
            "#bad-error",
            "invalid_arguments",
            "The values sent do not fit what the signal expects.",
        ),
    ]
    for button, slot, code, sentence in cases:
        alice.click(button)
        expect(alice.locator(slot)).to_have_text(sentence)
        expect(alice.locator(slot)).to_be_visible()
        expect(alice.locator(slot)).to_have_attribute("data-code", code)

    # A failed call that later succeeds clears its sentence.
    alice.fill("input[name=a]", "")
    alice.click("#add-form button")
    expect(alice.locator("#add-error")).to_have_text("The values sent do not fit what the signal expects.")
    alice.fill("input[name=a]", "4")
    alice.click("#add-form button")
    expect(alice.locator("#add-result")).to_have_text("7")
    expect(alice.locator("#add-error")).to_be_hidden()

    # Every code docs/protocol.md documents has its sentence, none is the code itself.
    messages = alice.evaluate("window.demo.ERROR_MESSAGES")
    codes = documented_error_codes()
    assert len(codes) >= 10, codes
    for code in codes:
        assert code in messages and messages[code] and code not in messages[code], code
    context.close()


def test_the_code_beside_a_widget_is_the_code_that_runs(browser, server):
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.http + "/")
    signals = (ROOT / "sampleproject" / "demo" / "signals.py").read_text()
    index_js = (ROOT / "sampleproject" / "demo" / "static" / "demo" / "index.js").read_text()
    chat = page.locator("section", has=page.locator("#chat-title")).locator(".code pre")
    python, javascript = chat.nth(0).inner_text(), chat.nth(1).inner_text()
    assert python.startswith('@signal("demo.chat"') and python in signals
    assert 'client.on("chat.message"' in javascript
    assert all(line.strip() in index_js for line in javascript.splitlines())
    context.close()


def test_sharing_a_note_shows_it_to_the_other_account_and_unsharing_takes_it_back(browser, server):
    alice_context, bob_context = browser.new_context(), browser.new_context()
    alice = sign_in(alice_context, server.http, "alice", "/notes/")
    bob = sign_in(bob_context, server.http, "bob", "/notes/")
    # Both lists are subscribed and loaded once their first GET is answered.
    for page in (alice, bob):
        expect(page.locator("#notes")).to_have_attribute("data-loaded", "true")

    alice.fill("#note-text", "the plan")
    alice.click("#note-form button")
    note = alice.locator("#notes li", has_text="the plan")
    expect(note.locator(".meta")).to_have_text("yours · private")
    expect(bob.locator("#notes li")).to_have_count(0)

    note.get_by_role("switch").check()
    expect(bob.locator("#notes li .text")).to_have_text(["the plan"])
    expect(bob.locator("#notes li .meta")).to_have_text(["shared by alice"])
    expect(note.locator(".meta")).to_have_text("yours · shared")
    # Bob may read alice's note, not change it: no switch, no delete button.
    expect(bob.locator("#notes li").get_by_role("switch")).to_have_count(0)
    expect(bob.locator("#notes li").get_by_role("button")).to_have_count(0)

    note.get_by_role("switch").uncheck()
    expect(bob.locator("#notes li")).to_have_count(0)
    expect(note.locator(".meta")).to_have_text("yours · private")

    # A later shared note is the marker: bob's list holds exactly it, the unshared note
    # did not come back.
    alice.fill("#note-text", "marker")
    alice.check("#note-shared")
    alice.click("#note-form button")
    expect(bob.locator("#notes li .text")).to_have_text(["marker"])
    alice_context.close()
    bob_context.close()


def test_pages_fit_a_phone(browser, server):
    """No sideways scrolling at 375 px, with the page full of long content."""
    context = browser.new_context(viewport=NARROW, is_mobile=True, has_touch=True)
    problems = []
    context.on("weberror", lambda error: problems.append(str(error.error)))
    context.on("console", lambda message: message.type == "error" and problems.append(message.text))
    login = context.new_page()
    login.goto(server.http + "/login/")
    assert login.evaluate(NO_OVERFLOW), login.evaluate("document.scrollingElement.scrollWidth")
    login.close()

    page = sign_in(context, server.http, "alice")
    long_word = "x" * 200
    page.fill("#chat-text", f"a long line {long_word}")
    page.click("#chat-form button")
    expect(page.locator("#chat-log li", has_text=long_word)).to_have_count(1)
    page.click("#bad-arguments")
    expect(page.locator("#bad-error")).to_be_visible()
    assert page.evaluate(NO_OVERFLOW), page.evaluate("document.scrollingElement.scrollWidth")

    page.goto(server.http + "/notes/")
    expect(page.locator("#notes")).to_have_attribute("data-loaded", "true")
    page.fill("#note-text", long_word)
    page.click("#note-form button")
    expect(page.locator("#notes li .text", has_text=long_word)).to_have_count(1)
    assert page.evaluate(NO_OVERFLOW), page.evaluate("document.scrollingElement.scrollWidth")

    assert problems == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ARTIFACTS / "demo-notes-phone.png"), full_page=True)
    context.close()
