"""The key view: window keys as JSON, for clients Django renders no page for.

A single-page app, a mobile app or a script POSTs to it and gets what
``{% floorchannels_script %}`` puts in a rendered page: a window key and the socket's path.
It is authenticated like the project's API: by the project's DRF authentication classes
when DRF is installed (Token, SimpleJWT, knox, the session...), and otherwise by the session
(with Django's CSRF check, as for any session-authenticated POST). Anonymous clients get a
key too, for an anonymous window.

Which topics a key grants is decided here, on the server, by the ``KEY_TOPICS`` hook; the
request's body is never read for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.apps import apps
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt

from . import credentials, protocol
from .conf import fc_settings
from .origins import parse_origin
from .windows import key_owner, window_key

logger = logging.getLogger("floorchannels.views")

#: The ``code`` of the key view's answer to a renewal whose signed-in user is gone.
SESSION_ENDED = "session_ended"
#: Largest request body read (it holds at most the previous key).
_MAX_BODY = 16 * 1024

#: Headers a cross-origin page may send to the key view (its preflight asks for them).
_CORS_HEADERS = "authorization, content-type, x-csrftoken"


class _Refused(Exception):
    """The request's credentials are wrong: answered ``status`` with ``detail``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class _CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check, returning the reason of a failure instead of a response.

    ``_reject`` is private to Django (DRF's SessionAuthentication overrides it the same way);
    tests/test_key_view.py's CSRF refusal fails if Django changes it.
    """

    def _reject(self, request: HttpRequest, reason: str) -> Any:
        return reason


def _enforce_csrf(request: HttpRequest) -> None:
    check = _CsrfCheck(lambda request: None)
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason:
        raise _Refused(403, f"CSRF Failed: {reason}")


def _authenticate(request: HttpRequest) -> tuple[Any, Any, bool]:
    """``(user, auth, by_session)`` for ``request``; raises _Refused for bad credentials.

    The DRF authentication classes come first (an invalid token is a 401, never an
    anonymous key); then the session Django's middleware read; else the user is anonymous.
    """
    # Read before DRF runs: a DRF Request that authenticates no one sets the wrapped
    # request's user to AnonymousUser.
    session_user = getattr(request, "user", None)
    if apps.is_installed("rest_framework"):
        from rest_framework import exceptions
        from rest_framework.authentication import SessionAuthentication
        from rest_framework.request import Request
        from rest_framework.settings import api_settings

        authenticators = [cls() for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES]
        # The parsers let SessionAuthentication's CSRF check read a form's token.
        parsers = [cls() for cls in api_settings.DEFAULT_PARSER_CLASSES]
        drf_request = Request(request, parsers=parsers, authenticators=authenticators)
        try:
            user = drf_request.user
        except exceptions.APIException as exc:
            status, headers = exc.status_code, {}
            if status == 401:
                challenge = authenticators[0].authenticate_header(drf_request) if authenticators else None
                if challenge:
                    headers["WWW-Authenticate"] = challenge
                else:
                    status = 403  # as DRF answers without a challenge to offer
            raise _Refused(status, str(exc.detail), headers) from None
        if user is not None and user.is_authenticated:
            by_session = isinstance(drf_request.successful_authenticator, SessionAuthentication)
            return user, drf_request.auth, by_session
    if session_user is not None and session_user.is_authenticated:
        request.user = session_user
        _enforce_csrf(request)
        return session_user, None, True
    return AnonymousUser(), None, False


def _previous_owner(request: HttpRequest) -> str | None:
    """The user pk of the key the client is renewing (``{"previous_key": ...}`` in a JSON
    body), or None: no previous key, an anonymous one, or one that is not ours.

    Only ever used to refuse: an old key grants nothing here, so its age does not matter.
    """
    if request.content_type != "application/json" or not request.body or len(request.body) > _MAX_BODY:
        return None
    try:
        previous = json.loads(request.body).get("previous_key")
    except (ValueError, AttributeError):
        return None
    return key_owner(previous)


def granted(request: HttpRequest) -> tuple[list[Any], list[Any]]:
    """``(topics, presence)`` the ``KEY_TOPICS`` hook grants to ``request``'s user."""
    path = fc_settings.KEY_TOPICS
    if not path:
        return [], []
    hook = import_string(path)
    grant = hook(request)
    if grant is None:
        return [], []
    if not isinstance(grant, Mapping) or set(grant) - {"topics", "presence"}:
        raise ImproperlyConfigured(
            f"FLOORCHANNELS['KEY_TOPICS'] ({path}) must return None or a dict with "
            f'"topics" and "presence" lists, not {grant!r:.200}.'
        )
    topics, presence = grant.get("topics") or [], grant.get("presence") or []
    for name, value in (("topics", topics), ("presence", presence)):
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise ImproperlyConfigured(
                f"FLOORCHANNELS['KEY_TOPICS'] ({path}) returned {name}={value!r:.200}: a list of topics is needed."
            )
    return list(topics), list(presence)


def _cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Let a page of an ``ALLOWED_ORIGINS`` origin read the answer (no cookies: such
    pages authenticate with a token in the Authorization header)."""
    origin = request.headers.get("Origin")
    listed = fc_settings.ALLOWED_ORIGINS
    response["Vary"] = "Origin"
    if origin and listed is not None:
        parsed = parse_origin(origin)
        if parsed is not None and any(parsed == parse_origin(str(entry)) for entry in listed):
            response["Access-Control-Allow-Origin"] = origin
    return response


@csrf_exempt  # checked in _authenticate, for session-authenticated requests only
def window_key_view(request: HttpRequest) -> HttpResponse:
    """``POST``: ``{"window_key", "url", "expires", "protocol"}`` for a new window."""
    if request.method == "OPTIONS":
        response = HttpResponse(status=204)
        response["Access-Control-Allow-Methods"] = "POST"
        response["Access-Control-Allow-Headers"] = _CORS_HEADERS
        response["Access-Control-Max-Age"] = "600"
        return _cors(request, response)
    if request.method != "POST":
        response = JsonResponse({"detail": "Use POST."}, status=405)
        response["Allow"] = "POST, OPTIONS"
        return _cors(request, response)
    previous = _previous_owner(request)
    try:
        user, auth, by_session = _authenticate(request)
    except _Refused as refused:
        response = JsonResponse({"detail": refused.detail}, status=refused.status, headers=refused.headers)
        return _cors(request, response)
    if previous is not None and (not user.is_authenticated or str(user.pk) != previous):
        # A tab renewing the key of a signed-in window whose session has ended (logged out,
        # or another account now): a key for another user, or an anonymous one, would turn
        # the page into someone else's without it knowing. It is told, and stops.
        response = JsonResponse(
            {"detail": "The session this window was opened with has ended.", "code": SESSION_ENDED},
            status=403,
        )
        return _cors(request, response)
    # The hook sees the user whatever authenticated them, as a view would.
    request.user = user
    request.auth = auth  # type: ignore[attr-defined]
    topics, presence = granted(request)
    credential = credentials.describe(auth, session=by_session)
    key = window_key(request, topics, presence, credential)
    window = request.floorchannels_window  # type: ignore[attr-defined]
    response = JsonResponse(
        {
            "window_key": key,
            "url": "/" + fc_settings.URL.lstrip("/"),
            "expires": int(window.expires),
            "protocol": protocol.VERSION,
        }
    )
    # A bearer credential: never kept by a cache.
    response["Cache-Control"] = "no-store"
    return _cors(request, response)
