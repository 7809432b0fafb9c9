"""The Python shortcuts send exactly the frames the JS client's built-in signals expect."""

import pytest

from floorchannels import BROADCAST, browser
from tests.conftest import make_key, open_window

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("shortcut", "name", "kwargs"),
    [
        (
            browser.html("#a", "<b>x</b>", "append"),
            "fc.dom.html",
            {"selector": "#a", "html": "<b>x</b>", "position": "append"},
        ),
        (browser.text("#a", "<b>"), "fc.dom.text", {"selector": "#a", "text": "<b>"}),
        (browser.remove(".x"), "fc.dom.remove", {"selector": ".x"}),
        (browser.empty(".x"), "fc.dom.empty", {"selector": ".x"}),
        (browser.add_class("#a", "on", "big"), "fc.dom.class", {"selector": "#a", "add": ["on", "big"]}),
        (browser.remove_class("#a", "on"), "fc.dom.class", {"selector": "#a", "remove": ["on"]}),
        (
            browser.set_attribute("#a", "title", "t"),
            "fc.dom.attr",
            {"selector": "#a", "name": "title", "value": "t"},
        ),
        (
            browser.remove_attribute("#a", "title"),
            "fc.dom.attr",
            {"selector": "#a", "name": "title", "value": None},
        ),
        (browser.focus("#a"), "fc.dom.focus", {"selector": "#a"}),
        (browser.reload(), "fc.page.reload", {}),
        (browser.redirect("/next/"), "fc.page.redirect", {"url": "/next/"}),
        (
            browser.notify("Hi", "error", 5000),
            "fc.notify",
            {"message": "Hi", "level": "error", "timeout": 5000},
        ),
    ],
)
async def test_shortcut_frames(shortcut, name, kwargs):
    window = await open_window(make_key())
    await shortcut.asend(BROADCAST)
    frame = await window.receive()
    assert (frame["signal"], frame["kwargs"]) == (name, kwargs)
    await window.close()
