"""Build a viewset instance acting for a window's user, outside any HTTP request.

Subscriptions and deliveries ask the viewset itself — its permission classes, its
``get_queryset()``, its serializer — what a user may see, exactly as a GET would.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from rest_framework.exceptions import APIException
from rest_framework.request import Request


def view_for(viewset: type, user: Any, action: str, pk: Any = None, host: str | None = None) -> Any:
    """A viewset instance for ``user`` doing ``action`` (``list`` or ``retrieve``)."""
    http = HttpRequest()
    http.method = "GET"
    http.user = user
    http.META["SERVER_NAME"] = host or _default_host()
    http.META["SERVER_PORT"] = "80"
    request = Request(http, authenticators=())
    request.user = user
    view = viewset()
    view.request = request
    view.args = ()
    view.kwargs = {} if pk is None else {getattr(view, "lookup_url_kwarg", None) or view.lookup_field: pk}
    view.action = action
    view.format_kwarg = None
    view.headers = {}
    return view


def _default_host() -> str:
    hosts = [h for h in settings.ALLOWED_HOSTS if h not in ("*",)]
    return hosts[0].lstrip(".") if hosts else "localhost"


def may_list(view: Any) -> bool:
    """The viewset's permission classes allow this user to list."""
    try:
        view.check_permissions(view.request)
    except APIException:
        return False
    return True


def visible_object(view: Any, pk: Any) -> Any:
    """The object if this user may retrieve it (queryset and object permissions), else None."""
    try:
        view.check_permissions(view.request)
        obj = view.get_queryset().filter(pk=pk).first()
        if obj is None:
            return None
        view.check_object_permissions(view.request, obj)
    except (APIException, ValueError, TypeError, ValidationError):
        return None
    return obj


def host_of(scope: dict[str, Any]) -> str | None:
    """The Host the websocket connected to, for absolute URLs in serializers."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return value.decode("latin1").split(":")[0]
    return None
