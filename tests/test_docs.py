"""The docs site's code is code: its Python parses, its API reference names every public
name, and the progress-bar tutorial's handler does what the tutorial says it does.

The strict site build itself (broken links and anchors, missing snippets) is ``make docs``.
"""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

import floorchannels
import floorchannels.rest
from floorchannels.registry import registry
from tests.conftest import make_key, nothing_before_marker, open_window, session_headers

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)


def blocks(lang: str) -> list[tuple[str, str]]:
    """(page, code) of every fenced block of ``lang`` in docs/, dedented like the page shows it."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for match in FENCE.finditer(page.read_text()):
            if match["lang"] == lang:
                indent = match["indent"]
                body = "".join(line.removeprefix(indent) for line in match["body"].splitlines(True))
                found.append((str(page.relative_to(DOCS)), body))
    return found


def test_the_docs_have_python_blocks():
    pages = {page for page, _ in blocks("python")}
    assert {
        "concepts.md",
        "tutorials/live-list.md",
        "tutorials/progress-bar.md",
        "reference/python.md",
    } <= pages


@pytest.mark.parametrize(("page", "code"), blocks("python"), ids=lambda value: value.splitlines()[0][:60])
def test_python_block_parses(page, code):
    # Snippets may await at top level, as in an async view; anything else must be Python.
    try:
        compile(code, page, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError as exc:
        pytest.fail(f"{page}: a python block does not parse: {exc}\n{code}")


def documented(page: str) -> set[str]:
    """Names the API reference page renders with a ``::: path`` directive or lists as code."""
    text = (DOCS / "reference" / page).read_text()
    return set(re.findall(r"^::: ([\w.]+)", text, re.M)) | set(re.findall(r"`([\w.]+)`", text))


def test_the_python_reference_covers_the_package_api():
    names = documented("python.md")
    missing = [name for name in floorchannels.__all__ if f"floorchannels.{name}" not in names]
    assert not missing, f"docs/reference/python.md does not document {missing}"


def test_the_rest_reference_covers_floorchannels_rest():
    names = documented("rest.md")
    missing = [
        n for n in floorchannels.rest.__all__ if f"floorchannels.rest.{n}" not in names and n not in names
    ]
    assert not missing, f"docs/reference/rest.md does not document {missing}"


def tutorial_block(page: str, first_line: str) -> str:
    (code,) = [code for p, code in blocks("python") if p == page and code.startswith(first_line)]
    return code


@pytest.fixture
def progress_tutorial():
    """The tutorial's ``reports/signals.py``, run as a module: its handler is registered."""
    module = types.ModuleType("tutorial_reports_signals")
    code = tutorial_block("tutorials/progress-bar.md", "# reports/signals.py")
    exec(compile(code, "docs/tutorials/progress-bar.md", "exec"), module.__dict__)  # noqa: S102
    yield module
    registry.unregister("reports.build")


@pytest.mark.django_db(transaction=True)
async def test_progress_tutorial_reports_each_step_to_the_window_that_asked(progress_tutorial):
    """As the page sees it: queued at once, then every step in order, then the link."""
    from django.contrib.auth.models import User

    def sign_in():
        user = User.objects.create_user("reader", password="x")
        return user, session_headers(user)

    user, headers = await sync_to_async(sign_in)()
    window = await open_window(make_key(user), headers)
    bystander = await open_window(make_key(user), headers)  # another tab of the same user

    reply = await window.call("reports.build", month=11)
    assert reply["ok"] is True and reply["queued"] is True and reply["result"] is None

    frames = [await window.receive(timeout=10) for _ in range(progress_tutorial.STEPS + 1)]
    assert [f["signal"] for f in frames] == ["reports.progress"] * progress_tutorial.STEPS + ["reports.done"]
    assert [f["kwargs"]["done"] for f in frames[:-1]] == list(range(1, progress_tutorial.STEPS + 1))
    assert frames[-1]["kwargs"] == {"month": 11, "url": "/reports/11/"}

    # WINDOW is that window only: the user's other tab got none of it.
    await nothing_before_marker(bystander)
    await window.close()
    await bystander.close()


@pytest.mark.django_db(transaction=True)
async def test_progress_tutorial_refusals_are_the_ones_it_names(progress_tutorial):
    anonymous = await open_window(make_key())
    refused = await anonymous.call("reports.build", month=11)
    assert refused["ok"] is False and refused["error"]["code"] == "forbidden"
    await anonymous.close()

    from django.contrib.auth.models import User

    def sign_in():
        user = User.objects.create_user("typo", password="x")
        return user, session_headers(user)

    user, headers = await sync_to_async(sign_in)()
    window = await open_window(make_key(user), headers)
    wrong = await window.call("reports.build", month="11")
    assert wrong["ok"] is False and wrong["error"]["code"] == "invalid_arguments"
    await window.close()


def test_settings_page_lists_every_system_check():
    source = (Path(floorchannels.__file__).parent / "checks.py").read_text()
    ids = set(re.findall(r'id="(floorchannels\.[EW]\d+)"', source))
    listed = set(re.findall(r"^\| `(floorchannels\.[EW]\d+)` \|", (DOCS / "settings.md").read_text(), re.M))
    assert listed == ids, (
        f"docs/settings.md lists {sorted(listed - ids)} extra, misses {sorted(ids - listed)}"
    )


def test_settings_page_names_every_setting():
    from floorchannels.conf import DEFAULTS

    text = (DOCS / "settings.md").read_text()
    missing = [name for name in DEFAULTS if f"`{name}`" not in text]
    assert not missing, f"docs/settings.md does not describe {missing}"
