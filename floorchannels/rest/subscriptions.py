"""Subscribing a window to a live resource: the ``subscribe``/``unsubscribe`` frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from channels.db import DatabaseSyncToAsync
from django.core.exceptions import DisallowedHost
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework.exceptions import NotAuthenticated, ParseError, PermissionDenied, ValidationError

from .. import protocol
from ..conf import fc_settings
from .resources import get_resource, object_group, partition_group, resource_name
from .views import Query, may_list, origin_of, view_for, visible_object, visible_pks

#: Bounds of a subscription's ``params`` and ``kwargs``: keys, values per key, characters.
MAX_QUERY_KEYS = 32
MAX_QUERY_VALUES = 100
MAX_QUERY_CHARS = 4096


@dataclass(eq=False)
class Subscription:
    """One window's interest in a resource (``pk`` None) or in one object."""

    id: Any
    resource: str
    viewset: type
    pk: str | None
    groups: list[str]
    #: pks this window is known to see; None when there were too many to record.
    known: set[str] | None
    #: The GET this subscription stands for: its filter parameters and URL kwargs.
    query: Query = Query()
    #: (scheme, host) of the socket's handshake, as the REST API would see them.
    origin: tuple[str, str] = ("http", "")

    def matches(self, pk: str) -> bool:
        return self.pk is None or self.pk == pk

    @property
    def action(self) -> str:
        return "list" if self.pk is None else "retrieve"


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def parse_query(frame: dict[str, Any]) -> Query | str:
    """The frame's ``params`` and ``kwargs`` as a :class:`Query`, or why they are refused."""
    params, kwargs = frame.get("params") or {}, frame.get("kwargs") or {}
    if not isinstance(params, dict) or not isinstance(kwargs, dict):
        return "'params' and 'kwargs' must be objects."
    if len(params) + len(kwargs) > MAX_QUERY_KEYS:
        return f"At most {MAX_QUERY_KEYS} params and kwargs."
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        values = value if isinstance(value, list) else [value]
        scalars = [_scalar(v) for v in values[: MAX_QUERY_VALUES + 1]]
        if len(values) > MAX_QUERY_VALUES or None in scalars:
            return f"params[{key!r}] must be a string, number, boolean or a short list of them."
        pairs.extend((key, v) for v in scalars if v is not None)
    kw: list[tuple[str, str]] = []
    for key, value in kwargs.items():
        scalar = _scalar(value)
        if scalar is None:
            return f"kwargs[{key!r}] must be a string or a number."
        kw.append((key, scalar))
    if sum(len(k) + len(v) for k, v in (*pairs, *kw)) > MAX_QUERY_CHARS:
        return f"params and kwargs are limited to {MAX_QUERY_CHARS} characters."
    return Query(params=tuple(sorted(pairs)), kwargs=tuple(sorted(kw)))


@dataclass
class _Prepared:
    error: str | None = None
    message: str = ""
    groups: list[str] | None = None
    known: set[str] | None = None
    pk: str | None = None
    origin: tuple[str, str] = ("http", "")


def _prepare(viewset: type, user: Any, scope: dict[str, Any], query: Query, pk: str | None) -> _Prepared:
    """Permission check and initial state, in a thread, as the matching GET would decide."""
    name = resource_name(viewset)
    view = view_for(viewset, user, "list" if pk is None else "retrieve", scope, query, pk)
    try:
        origin = origin_of(view)
    except DisallowedHost:
        return _Prepared(protocol.FORBIDDEN, "This socket's Host is not in ALLOWED_HOSTS.")
    if not may_list(view):
        return _Prepared(protocol.FORBIDDEN, "This window may not see this resource.")
    try:
        if pk is not None:
            obj = visible_object(view, pk)
            if obj is None:
                return _Prepared(protocol.NOT_FOUND, "No such object.")
            pk = str(obj.pk)
            return _Prepared(groups=[object_group(name, pk)], known={pk}, pk=pk, origin=origin)
        groups = [partition_group(name, p) for p in view.get_live_subscription_partitions()]
        limit = fc_settings.MAX_TRACKED_PKS
        pks = visible_pks(view, limit)
    except (ValidationError, DjangoValidationError, ParseError) as exc:
        # A filter backend refused the parameters: a GET would have answered 400.
        return _Prepared(protocol.INVALID_ARGUMENTS, _details(exc))
    except (PermissionDenied, NotAuthenticated, Http404):
        return _Prepared(protocol.FORBIDDEN, "This window may not see this resource.")
    return _Prepared(groups=groups, known=set(pks) if len(pks) <= limit else None, origin=origin)


def _details(exc: Exception) -> str:
    detail = getattr(exc, "detail", None) or getattr(exc, "message_dict", None) or str(exc)
    return f"Invalid subscription parameters: {detail}"[:1000]


async def subscribe(consumer: Any, frame: dict[str, Any]) -> dict[str, Any]:
    """Handle a ``subscribe`` frame; return the reply."""
    call_id = frame["id"]
    resource, pk = frame.get("resource"), frame.get("pk")
    if not isinstance(resource, str) or not (
        pk is None or isinstance(pk, str | int) and not isinstance(pk, bool)
    ):
        return protocol.reply_error(
            call_id, protocol.INVALID_FRAME, "subscribe needs a string 'resource' and an optional 'pk'."
        )
    if not isinstance(consumer.subscriptions, dict):
        consumer.subscriptions = {}
    subscriptions = consumer.subscriptions
    if call_id in subscriptions:
        return protocol.reply_error(
            call_id, protocol.INVALID_FRAME, "This subscription id is already in use."
        )
    if len(subscriptions) >= fc_settings.MAX_SUBSCRIPTIONS:
        return protocol.reply_error(
            call_id, protocol.TOO_MANY_SUBSCRIPTIONS, "This window holds too many subscriptions."
        )
    viewset = get_resource(resource) if len(resource) <= 200 else None
    if viewset is None:
        return protocol.reply_error(
            call_id, protocol.UNKNOWN_RESOURCE, f"No live resource is named {resource[:200]!r}."
        )
    query = parse_query(frame)
    if isinstance(query, str):
        return protocol.reply_error(call_id, protocol.INVALID_FRAME, query)
    pk = None if pk is None else str(pk)
    prepare = DatabaseSyncToAsync(_prepare, thread_sensitive=False)
    ready = await prepare(viewset, consumer.window.user, consumer.scope, query, pk)
    if ready.error is not None:
        return protocol.reply_error(call_id, ready.error, ready.message)
    groups = ready.groups or []
    subscriptions[call_id] = Subscription(
        call_id, resource, viewset, ready.pk, groups, ready.known, query, ready.origin
    )
    await consumer.hub.join(consumer, groups)
    return protocol.reply_ok(call_id, None)


async def unsubscribe(consumer: Any, frame: dict[str, Any]) -> dict[str, Any]:
    """Handle an ``unsubscribe`` frame; idempotent."""
    key = frame.get("subscription")
    if not isinstance(key, str | int):
        return protocol.reply_error(
            frame["id"], protocol.INVALID_FRAME, "unsubscribe needs the 'subscription' id."
        )
    subscriptions = consumer.subscriptions
    # A window that never subscribed holds a shared read-only empty mapping: nothing to
    # remove, and the answer is the same as for any unknown id.
    subscription = subscriptions.pop(key, None) if isinstance(subscriptions, dict) else None
    if subscription is not None:
        still_used = {g for s in consumer.subscriptions.values() for g in s.groups}
        consumer.hub.leave(consumer, [g for g in subscription.groups if g not in still_used])
    return protocol.reply_ok(frame["id"], None)
