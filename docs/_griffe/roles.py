"""A griffe extension for the API reference: reads floorchannels' reST-flavoured docstrings
as Markdown.

The code's docstrings follow Django's habit (``literal``, :class:`Name`, a ``::`` before an
example block). Markdown renders ``literal`` as code already; this turns the Sphinx roles
into code spans (``~a.b.Name`` shows ``Name``, as in Sphinx) and a paragraph's closing
``::`` into ``:``, so the reference reads as the source means it, without rewriting every
docstring for one renderer.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")
_LITERAL_BLOCK = re.compile(r"(\S)::$", re.MULTILINE)


def _role(match: re.Match[str]) -> str:
    short, target = match.groups()
    target = target.strip()
    if short:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def to_markdown(text: str) -> str:
    text = _ROLE.sub(_role, text)
    return _LITERAL_BLOCK.sub(r"\1:", text)


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
