"""Python shortcuts for the browser signals the JS client has built in.

Each function describes one browser action and returns a :class:`BrowserSignal`; send it
with ``.send(to, window=...)`` from sync code or ``await .asend(...)`` from async code::

    browser.notify("Saved.", level="success").send(USER, window=window)
    await browser.html("#rows", "<li>new</li>", position="append").asend("inbox")

HTML given to :func:`html` is inserted as HTML: escape user content (``format_html``).
Text given to :func:`text` and :func:`notify` is always shown as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .dispatch import acall, call
from .windows import WindowInfo

Position = Literal["inner", "outer", "append", "prepend", "before", "after"]
Level = Literal["info", "success", "warning", "error"]


@dataclass(frozen=True)
class BrowserSignal:
    """One browser action, ready to send: the built-in signal's ``name`` and its ``kwargs``."""

    name: str
    kwargs: dict[str, Any]

    def send(self, to: Any, *, window: WindowInfo | None = None, **options: Any) -> str:
        """Send it with :func:`~floorchannels.call` (same targets and options); return the
        message id."""
        return call(self.name, to, window=window, kwargs=self.kwargs, **options)

    async def asend(self, to: Any, *, window: WindowInfo | None = None, **options: Any) -> str:
        """Send it with :func:`~floorchannels.acall`, from async code."""
        return await acall(self.name, to, window=window, kwargs=self.kwargs, **options)


def html(selector: str, html: str, position: Position = "inner") -> BrowserSignal:
    """Insert ``html`` into (``inner``), instead of (``outer``), or around the matches."""
    return BrowserSignal("fc.dom.html", {"selector": selector, "html": str(html), "position": position})


def text(selector: str, text: str) -> BrowserSignal:
    """Set the matches' text (``textContent``): never parsed as HTML."""
    return BrowserSignal("fc.dom.text", {"selector": selector, "text": str(text)})


def remove(selector: str) -> BrowserSignal:
    """Remove every match from the page."""
    return BrowserSignal("fc.dom.remove", {"selector": selector})


def empty(selector: str) -> BrowserSignal:
    """Remove the matches' children."""
    return BrowserSignal("fc.dom.empty", {"selector": selector})


def add_class(selector: str, *names: str) -> BrowserSignal:
    """Add CSS classes to every match."""
    return BrowserSignal("fc.dom.class", {"selector": selector, "add": list(names)})


def remove_class(selector: str, *names: str) -> BrowserSignal:
    """Remove CSS classes from every match."""
    return BrowserSignal("fc.dom.class", {"selector": selector, "remove": list(names)})


def set_attribute(selector: str, name: str, value: str) -> BrowserSignal:
    """Set attribute ``name`` of every match to ``value``."""
    return BrowserSignal("fc.dom.attr", {"selector": selector, "name": name, "value": str(value)})


def remove_attribute(selector: str, name: str) -> BrowserSignal:
    """Remove attribute ``name`` from every match."""
    return BrowserSignal("fc.dom.attr", {"selector": selector, "name": name, "value": None})


def focus(selector: str) -> BrowserSignal:
    """Focus the first match."""
    return BrowserSignal("fc.dom.focus", {"selector": selector})


def reload() -> BrowserSignal:
    """Reload the page (``location.reload()``): say, after a deploy that changed it."""
    return BrowserSignal("fc.page.reload", {})


def redirect(url: str) -> BrowserSignal:
    """Send the page to ``url``, resolved against the page; the client follows only
    ``http:`` and ``https:`` URLs."""
    return BrowserSignal("fc.page.redirect", {"url": str(url)})


def notify(message: str, level: Level = "info", timeout: int | None = None) -> BrowserSignal:
    """An accessible toast (``aria-live``), shown as text, never HTML.

    ``level`` picks its colour and live region (``error`` is announced at once);
    ``timeout`` is in milliseconds: the client's default is 5,000, and ``0`` keeps the
    toast until it is dismissed.
    """
    kwargs: dict[str, Any] = {"message": str(message), "level": level}
    if timeout is not None:
        kwargs["timeout"] = timeout
    return BrowserSignal("fc.notify", kwargs)
