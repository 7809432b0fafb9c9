"""Delivering resource events to this process's subscribed windows, filtered per user.

The hub hands each ``fc.resource`` message to :func:`on_message`, which queues it: events
are processed in order, one at a time, off the hub's reader (they need the database). For
one event, the viewset answers once per distinct user among the recipients — not once per
window — whether the object is visible and what its serializer says.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from channels.db import DatabaseSyncToAsync

from .. import metrics
from .events import CREATED, DELETED, UPDATED
from .views import host_of, view_for, visible_object

logger = logging.getLogger("floorchannels.rest")

_RECENT = 1024


class _HubState:
    def __init__(self, hub: Any) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.recent: OrderedDict[str, set[int]] = OrderedDict()
        self.task = asyncio.ensure_future(self._run(hub))

    async def _run(self, hub: Any) -> None:
        while True:
            message = await self.queue.get()
            try:
                await deliver(hub, self, message)
            except Exception:
                logger.exception("Delivering resource event %s failed.", message.get("id"))

    def first_time(self, message: dict[str, Any], windows: list[Any]) -> list[Any]:
        """Windows that have not yet received this event through another group."""
        if not message.get("multi"):
            return windows
        seen = self.recent.get(message["id"])
        if seen is None:
            seen = self.recent[message["id"]] = set()
            if len(self.recent) > _RECENT:
                self.recent.popitem(last=False)
        fresh = [w for w in windows if id(w) not in seen]
        seen.update(id(w) for w in fresh)
        return fresh


def on_message(hub: Any, message: dict[str, Any]) -> None:
    state = getattr(hub, "_rest_state", None)
    if state is None:
        state = hub._rest_state = _HubState(hub)
    state.queue.put_nowait(message)


def _user_key(user: Any) -> Any:
    return user.pk if user.is_authenticated else None


def _views_of_users(viewset: type, users: dict[Any, tuple[Any, str | None]], pk: str) -> dict[Any, Any]:
    """For each user: the serialized object (or True for id-only), or None if invisible."""
    results: dict[Any, Any] = {}
    for key, (user, host) in users.items():
        if user.is_authenticated:
            # Fresh from the database: permissions and is_active may have changed since the
            # window connected, and Django caches permissions on the user object.
            user = type(user)._default_manager.filter(pk=user.pk, is_active=True).first()
            if user is None:
                results[key] = None
                continue
        view = view_for(viewset, user, "retrieve", pk, host)
        obj = visible_object(view, pk)
        if obj is None:
            results[key] = None
        elif getattr(view, "live_payload", "data") == "id":
            results[key] = True
        else:
            results[key] = view.get_serializer(obj).data
    return results


async def deliver(hub: Any, state: _HubState, message: dict[str, Any]) -> None:
    members = hub.groups.get(message.get("group", ""))
    if not members:
        return
    exclude = message.get("exclude")
    windows = state.first_time(message, [w for w in members if w.window_id != exclude and w.subscriptions])
    resource, pk, action = message["resource"], message["pk"], message["action"]
    pairs = [
        (window, sub)
        for window in windows
        for sub in window.subscriptions.values()
        if sub.resource == resource and sub.matches(pk)
    ]
    if not pairs:
        return
    seen_by: dict[Any, Any] = {}
    if action != DELETED:
        users = {_user_key(w.window.user): (w.window.user, host_of(w.scope)) for w, _ in pairs}
        check = DatabaseSyncToAsync(_views_of_users, thread_sensitive=False)
        seen_by = await check(pairs[0][1].viewset, users, pk)
    for window, sub in pairs:
        frame = _frame_for(sub, action, pk, seen_by.get(_user_key(window.window.user)), message["id"])
        if frame is None:
            continue
        metrics.increment(f"resource_events_{frame['action']}")
        try:
            window.send_json(frame)
        except Exception:
            logger.debug("Could not write to window %s.", window.window_id, exc_info=True)


def _frame_for(sub: Any, action: str, pk: str, visible: Any, message_id: str) -> dict[str, Any] | None:
    """Decide what one subscription hears of one event (see docs/protocol.md)."""
    known = sub.known
    was_known = known is None or pk in known
    if action == DELETED or visible is None:
        if not was_known:
            return None  # never told about it: not even the pk
        if known is not None:
            known.discard(pk)
        kind, data = DELETED, None
    else:
        kind = UPDATED if (action == UPDATED and (known is None or pk in known)) else CREATED
        if known is not None:
            known.add(pk)
        data = None if visible is True else visible
    frame = {
        "type": "event",
        "subscription": sub.id,
        "resource": sub.resource,
        "action": kind,
        "pk": pk,
        "id": message_id,
    }
    if data is not None:
        frame["data"] = data
    return frame
