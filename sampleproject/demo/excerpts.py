"""The code shown beside each widget, read from the files that run it.

Excerpts are never copied into templates: a Python excerpt is the source of the function or
class itself (``inspect.getsource``), a JavaScript or template excerpt is the region of the
real static file or template between two marker comments. Whatever the demo runs is what it
shows, so the two cannot drift apart.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from django.contrib.staticfiles import finders
from django.template.loader import get_template

#: ``// excerpt: name`` … ``// end excerpt`` in JavaScript, ``{# excerpt: name #}`` …
#: ``{# end excerpt #}`` in templates.
MARKERS = {
    "js": (r"^\s*// excerpt: {name}\s*$", r"^\s*// end excerpt\s*$"),
    "html": (r"^\s*\{{# excerpt: {name} #\}}\s*$", r"^\s*\{# end excerpt #\}\s*$"),
}


@dataclass(frozen=True)
class Excerpt:
    """A piece of real source: where it comes from (``label``), its language and its text."""

    label: str
    language: str
    code: str


def python(dotted: str) -> Excerpt:
    """The source of a module-level function or class, e.g. ``"sampleproject.demo.signals.chat"``."""
    module_name, _, attribute = dotted.rpartition(".")
    module = import_module(module_name)
    obj = getattr(module, attribute)
    source = inspect.getsource(obj)
    path = Path(inspect.getsourcefile(obj) or module_name)
    return Excerpt(f"{path.parent.name}/{path.name}", "python", textwrap.dedent(source).rstrip())


def marked(text: str, name: str, language: str) -> str:
    """The lines of ``text`` between the start and end markers of excerpt ``name``.

    A missing marker is an error, not an empty excerpt: a renamed region must fail loudly
    (the demo's tests render every page) rather than show a blank code panel.
    """
    start_pattern, end_pattern = MARKERS[language]
    start = re.compile(start_pattern.format(name=re.escape(name)))
    end = re.compile(end_pattern)
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if start.match(line):
            for stop in range(index + 1, len(lines)):
                if end.match(lines[stop]):
                    return textwrap.dedent("\n".join(lines[index + 1 : stop])).strip("\n")
            raise ValueError(f"excerpt {name!r} has no end marker")
    raise ValueError(f"no excerpt {name!r}")


def static_js(path: str, name: str) -> Excerpt:
    """Excerpt ``name`` of the static JavaScript file ``path`` (e.g. ``"demo/index.js"``)."""
    found = finders.find(path)
    if not found:
        raise FileNotFoundError(f"static file {path!r} not found")
    return Excerpt(Path(path).name, "javascript", marked(Path(found).read_text(), name, "js"))


def template(name: str, excerpt: str) -> Excerpt:
    """Excerpt ``excerpt`` of the template ``name`` as written (its source, not its output)."""
    source = get_template(name).template.source
    return Excerpt(Path(name).name, "html", marked(source, excerpt, "html"))


def index_excerpts() -> dict[str, list[Excerpt]]:
    """The excerpts of the signals page, one list per widget (read on each render, so an
    edited file shows on the next reload)."""
    page = "demo/index.html"
    return {
        "chat": [python("sampleproject.demo.signals.chat"), static_js("demo/index.js", "chat")],
        "presence": [static_js("demo/index.js", "presence")],
        "notify": [python("sampleproject.demo.signals.notify_tabs"), template(page, "notify")],
        "add": [python("sampleproject.demo.signals.add"), template(page, "add")],
        "errors": [python("sampleproject.demo.signals.staff_only"), static_js("demo/demo.js", "errors")],
        "progress": [python("sampleproject.demo.signals.progress"), static_js("demo/index.js", "progress")],
        "frames": [static_js("demo/demo.js", "frames")],
    }


def notes_excerpts() -> dict[str, list[Excerpt]]:
    """The excerpts of the live notes page."""
    return {
        "notes": [python("sampleproject.demo.api.NoteViewSet"), static_js("demo/notes.js", "live-list")],
        "share": [static_js("demo/notes.js", "share")],
        "frames": [static_js("demo/demo.js", "frames")],
    }
