"""Build a viewset instance acting for a window's user, as a GET from that window would.

Subscriptions and deliveries ask the viewset itself — its permission classes,
``get_queryset()``, ``filter_queryset()`` (its filter backends), its serializer — what a user
may see, exactly as a GET would. The request they see is made from the socket's own
handshake (scheme, Host with its port, forwarded headers), so ``request.build_absolute_uri``,
``SECURE_PROXY_SSL_HEADER`` and ``USE_X_FORWARDED_HOST`` give what the REST API gives, and
its query string holds the subscription's filter parameters.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import DisallowedHost, ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404
from rest_framework.exceptions import APIException
from rest_framework.request import Request

#: ws/wss handshakes stand for the http/https requests the same page makes.
_HTTP_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
#: Handshake scope keys a GET made from the same page shares.
_SCOPE_KEYS = ("http_version", "path", "raw_path", "root_path", "headers", "client", "server")


@dataclass(frozen=True)
class Query:
    """What a subscription asks for: the GET's query parameters and URL kwargs.

    Hashable, so windows asking the same thing (with the same user and origin) are served by
    one database query per event.
    """

    params: tuple[tuple[str, str], ...] = ()
    kwargs: tuple[tuple[str, str], ...] = ()

    @property
    def query_string(self) -> str:
        return urlencode(self.params)


def http_scope(scope: dict[str, Any], query: Query = Query()) -> dict[str, Any]:
    """The ASGI scope of a GET made from the page that opened this socket."""
    http = {key: scope[key] for key in _SCOPE_KEYS if key in scope}
    http.update(
        type="http",
        method="GET",
        scheme=_HTTP_SCHEMES.get(scope.get("scheme") or "ws", "http"),
        query_string=query.query_string.encode("ascii"),
    )
    http.setdefault("path", "/")
    if not any(name == b"host" for name, _ in http.get("headers", ())) and not http.get("server"):
        # Only in-process test scopes lack both: HTTP/1.1 handshakes always carry a Host.
        http["server"] = (_default_host(), 80)
    return http


def _default_host() -> str:
    hosts = [h for h in settings.ALLOWED_HOSTS if h != "*"]
    return hosts[0].lstrip(".") if hosts else "localhost"


def view_for(
    viewset: type, user: Any, action: str, scope: dict[str, Any], query: Query = Query(), pk: Any = None
) -> Any:
    """A viewset instance for ``user`` doing ``action`` (``list`` or ``retrieve``)."""
    http = ASGIRequest(http_scope(scope, query), io.BytesIO())
    http.user = user
    request = Request(http, authenticators=())
    request.user = user
    view = viewset()
    view.request = request
    view.args = ()
    view.kwargs = dict(query.kwargs)
    if pk is not None:
        view.kwargs[getattr(view, "lookup_url_kwarg", None) or view.lookup_field] = pk
    view.action = action
    view.format_kwarg = None
    view.headers = {}
    request.version, request.versioning_scheme = view.determine_version(request, **view.kwargs)
    return view


def origin_of(view: Any) -> tuple[str, str]:
    """(scheme, host) as the REST API would see them; DisallowedHost for a Host Django refuses."""
    request = view.request._request
    return request.scheme, request.get_host()


def may_list(view: Any) -> bool:
    """The viewset's permission classes allow this user this action."""
    try:
        view.check_permissions(view.request)
    except APIException:
        return False
    return True


def visible_object(view: Any, pk: Any) -> Any:
    """The object with ``pk`` as this view's GET would show it, else None.

    ``list``: the object is in ``filter_queryset(get_queryset())`` (what a list GET with the
    subscription's parameters returns, pagination aside). ``retrieve``: the same, then the
    object permissions, as ``get_object()`` does.
    """
    try:
        view.check_permissions(view.request)
        obj = view.filter_queryset(view.get_queryset()).filter(pk=pk).first()
        if obj is None:
            return None
        if view.action != "list":
            view.check_object_permissions(view.request, obj)
    except (APIException, Http404, ValueError, TypeError, ValidationError, DisallowedHost):
        return None
    return obj


def visible_objects(view: Any, pks: set[str]) -> dict[str, Any]:
    """Of ``pks``, the objects this view's GET would show (see :func:`visible_object`), by pk,
    with one query."""
    try:
        view.check_permissions(view.request)
        objects = list(view.filter_queryset(view.get_queryset()).filter(pk__in=list(pks)))
    except (APIException, Http404, ValueError, TypeError, ValidationError, DisallowedHost):
        return {}
    visible = {}
    for obj in objects:
        if view.action != "list":
            try:
                view.check_object_permissions(view.request, obj)
            except (APIException, Http404):
                continue
        visible[str(obj.pk)] = obj
    return visible


def visible_pks(view: Any, limit: int) -> list[str]:
    """Up to ``limit`` + 1 pks a list GET by this view would show."""
    queryset = view.filter_queryset(view.get_queryset())
    return [str(pk) for pk in queryset.values_list("pk", flat=True)[: limit + 1]]
