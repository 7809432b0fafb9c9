"""Subscribing a window to a live resource: the ``subscribe``/``unsubscribe`` frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from channels.db import DatabaseSyncToAsync

from .. import protocol
from ..conf import fc_settings
from .resources import get_resource, object_group, partition_group, resource_name
from .views import host_of, may_list, view_for, visible_object


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

    def matches(self, pk: str) -> bool:
        return self.pk is None or self.pk == pk


def _prepare(viewset: type, user: Any, host: str | None, pk: str | None) -> tuple[str | None, list[str], Any]:
    """Permission check and initial state, in a thread: (error code, groups, known pks)."""
    name = resource_name(viewset)
    if pk is not None:
        view = view_for(viewset, user, "retrieve", pk, host)
        if not may_list(view):
            return protocol.FORBIDDEN, [], None
        if visible_object(view, pk) is None:
            return protocol.NOT_FOUND, [], None
        return None, [object_group(name, pk)], {pk}
    view = view_for(viewset, user, "list", None, host)
    if not may_list(view):
        return protocol.FORBIDDEN, [], None
    groups = [partition_group(name, p) for p in view.get_live_subscription_partitions()]
    limit = fc_settings.MAX_TRACKED_PKS
    pks = [str(pk) for pk in view.get_queryset().values_list("pk", flat=True)[: limit + 1]]
    return None, groups, (set(pks) if len(pks) <= limit else None)


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
    pk = None if pk is None else str(pk)
    prepare = DatabaseSyncToAsync(_prepare, thread_sensitive=False)
    error, groups, known = await prepare(viewset, consumer.window.user, host_of(consumer.scope), pk)
    if error == protocol.FORBIDDEN:
        return protocol.reply_error(call_id, error, "This window may not see this resource.")
    if error == protocol.NOT_FOUND:
        return protocol.reply_error(call_id, error, "No such object.")
    subscriptions[call_id] = Subscription(call_id, resource, viewset, pk, groups, known)
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
