"""Cross-site websocket hijacking defence: the Origin header must name an allowed host."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host


def allowed_hosts() -> list[str]:
    """ALLOWED_HOSTS, with Django's own DEBUG fallback for an empty list."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def origin_allowed(scope: dict[str, Any]) -> bool:
    """True for a same-site browser, or a client that sends no Origin (not a browser).

    Browsers always send Origin on websocket handshakes, so a missing header cannot be a
    hijacking page; refusing it would only lock out command-line and server clients.
    """
    origin = None
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            origin = value.decode("latin1")
            break
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    domain, _port = split_domain_port(parts.netloc)
    return bool(domain) and validate_host(domain, allowed_hosts())
