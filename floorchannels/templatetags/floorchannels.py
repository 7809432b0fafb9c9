"""``{% floorchannels_script %}``: the page's window key, socket URL and the client bundle.

The view grants topics either by calling ``floorchannels.window_key(request, topics=...)``
itself (the tag then reuses that window) or by passing them to the tag:
``{% floorchannels_script topics %}`` (and presence topics:
``{% floorchannels_script topics presence %}``).

When the project includes ``floorchannels.urls``, the config also holds ``key_url``, the key
view's URL, where the page can fetch a fresh key after its own has expired, and the CSRF
token that request needs.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.middleware.csrf import get_token
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, json_script

from ..conf import fc_settings
from ..windows import window_key

register = template.Library()


def _config(context: Any, topics: Any, presence: Any = None) -> dict[str, Any]:
    request = context.get("request")
    if request is None:
        raise template.TemplateSyntaxError(
            "floorchannels needs the request in the template context "
            "(enable django.template.context_processors.request)."
        )
    key = getattr(request, "floorchannels_window_key", None)
    if key is None or topics is not None or presence is not None:
        key = window_key(request, topics or (), presence or ())
    config = {"url": "/" + fc_settings.URL.lstrip("/"), "window_key": key}
    key_url = _key_url()
    if key_url is not None:
        config["key_url"] = key_url
        # The key view checks CSRF for session-authenticated requests: a page renewing its
        # key needs the token even when nothing else on it set the CSRF cookie.
        config["csrf_token"] = get_token(request)
    return config


def _key_url() -> str | None:
    """The key view's URL when the project includes floorchannels.urls: a page can then
    fetch a fresh key (the JS client's getWindowKey) instead of being reloaded."""
    try:
        return reverse("floorchannels:key")
    except NoReverseMatch:
        return None


@register.simple_tag(takes_context=True)
def floorchannels_config(context: Any, topics: Any = None, presence: Any = None) -> str:
    """Only the JSON config element (for pages that bundle the client themselves)."""
    return json_script(_config(context, topics, presence), "floorchannels-config")


@register.simple_tag(takes_context=True)
def floorchannels_script(context: Any, topics: Any = None, presence: Any = None) -> str:
    """The config element and the client bundle's script tag.

    ``topics`` are granted to the window; ``presence`` are topics where it is also listed
    as present (and granted).
    """
    return format_html(
        '{}<script src="{}" defer></script>',
        json_script(_config(context, topics, presence), "floorchannels-config"),
        static("floorchannels/floorchannels.js"),
    )
