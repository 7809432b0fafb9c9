"""Cross-site websocket hijacking defence: the Origin header must name an allowed origin.

By default an origin is allowed when its host is in ``ALLOWED_HOSTS`` (the pages this
project serves), whatever its scheme and port. A single-page app served from another
origin (another host, or another port of this one) is listed in
``FLOORCHANNELS["ALLOWED_ORIGINS"]``; once that is set, it is the whole list, and scheme,
host and port must all match.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from .conf import fc_settings

_DEFAULT_PORTS = {"http": 80, "https": 443}


def allowed_hosts() -> list[str]:
    """ALLOWED_HOSTS, with Django's own DEBUG fallback for an empty list."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def parse_origin(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin, the port defaulting to the scheme's; None when
    ``origin`` is not one (``scheme://host[:port]``, http or https, nothing after)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username is not None or parts.password is not None:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def request_origin(headers: Any) -> str | None:
    """The Origin header among ASGI ``headers`` (pairs of bytes), or None."""
    for name, value in headers:
        if name == b"origin":
            return value.decode("latin1")
    return None


def is_allowed_origin(origin: str) -> bool:
    """Whether a page from ``origin`` may use floorchannels (see the module docstring)."""
    listed = fc_settings.ALLOWED_ORIGINS
    if listed is not None:
        parsed = parse_origin(origin)
        return parsed is not None and any(parsed == parse_origin(str(entry)) for entry in listed)
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    domain, _port = split_domain_port(parts.netloc)
    return bool(domain) and validate_host(domain, allowed_hosts())


def origin_allowed(scope: dict[str, Any]) -> bool:
    """True for an allowed browser origin, or a client that sends no Origin (not a browser).

    Browsers always send Origin on websocket handshakes, so a missing header cannot be a
    hijacking page; refusing it would only lock out command-line and server clients.
    """
    origin = request_origin(scope.get("headers", ()))
    return origin is None or is_allowed_origin(origin)
