"""Delivering resource events to this process's subscribed windows, filtered per user.

The hub hands each ``fc.resource`` message to :func:`on_message`, which queues it: events
are processed in order, one at a time, off the hub's reader (they need the database). For
one event, the viewset answers once per distinct user among the recipients — not once per
window — whether the object is visible and what its serializer says.

Everything held here is bounded, and each overflow is visible:

- the queue holds ``RESOURCE_QUEUE_SIZE`` events; an event that finds it full is dropped
  and the windows it was for get ``resync`` (reason ``overloaded``), once per resource
  until the queue has drained, with a WARNING and the ``resource_events_dropped`` metric;
- the de-duplication memory (an event sent to several groups reaches a window once)
  remembers at most ``RECENT_IDS`` events and ``RECENT_WINDOWS`` windows among them;
- a subscription records at most ``MAX_TRACKED_PKS`` pks, however many events add.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from channels.db import DatabaseSyncToAsync

from .. import metrics, protocol
from ..conf import fc_settings
from ..tasks import supervise
from .events import CREATED, DELETED, UPDATED
from .views import view_for, visible_objects

logger = logging.getLogger("floorchannels.rest")

#: Most events the de-duplication memory remembers, and most windows across them: a set
#: of windows per event id grows with the fan-out, so the count of ids alone does not
#: bound its bytes (1,024 ids of 10,000 windows each is ten million entries).
RECENT_IDS = 1024
RECENT_WINDOWS = 100_000
#: Most events of one run checked together.
BATCH_SIZE = 500


def _batch_key(message: dict[str, Any]) -> tuple[str, str, str]:
    return message["group"], message["resource"], message["action"]


class _HubState:
    """This hub's resource-event machinery: the queue, its consumer and its memories."""

    def __init__(self, hub: Any) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(
            maxsize=max(1, fc_settings.RESOURCE_QUEUE_SIZE)
        )
        self.recent: OrderedDict[str, set[int]] = OrderedDict()
        #: Window entries across ``recent``'s sets.
        self.recent_windows = 0
        #: (window, resource) told to resync during the current overload, and how many
        #: events were dropped in it; both reset when the queue has drained.
        self.told: set[tuple[int, str]] = set()
        self.dropped = 0
        self.tasks: set[asyncio.Future[Any]] = set()
        self.task = supervise(lambda: self._run(hub), "resource event delivery", self.tasks)

    async def _run(self, hub: Any) -> None:
        carry: dict[str, Any] | None = None
        while True:
            first = carry if carry is not None else await self.queue.get()
            carry = None
            batch = [first]
            # A run of queued events for the same group, resource and action is checked
            # together: one query per recipient for the whole run (a bulk change).
            while len(batch) < BATCH_SIZE and not self.queue.empty():
                message = self.queue.get_nowait()
                if _batch_key(message) != _batch_key(first):
                    carry = message
                    break
                batch.append(message)
            try:
                await deliver(hub, self, batch)
            except Exception:
                logger.exception("Delivering resource event(s) %s failed.", ", ".join(m["id"] for m in batch))
            if self.dropped and self.queue.empty():
                logger.warning(
                    "Resource event queue drained after an overload: %d event(s) were dropped, "
                    "%d window subscription(s) told to resync.",
                    self.dropped,
                    len(self.told),
                )
                self.dropped = 0
                self.told.clear()

    def overflow(self, hub: Any, message: dict[str, Any]) -> None:
        """The queue is full: drop ``message`` and tell its windows their list may be stale."""
        metrics.increment("resource_events_dropped")
        if not self.dropped:
            logger.warning(
                "Resource event queue full (RESOURCE_QUEUE_SIZE=%d): dropping events; their "
                "windows get resync 'overloaded'.",
                self.queue.maxsize,
            )
        self.dropped += 1
        resource, pk = message["resource"], message["pk"]
        frame = {"type": "resync", "reason": "overloaded", "resource": resource}
        for window in list(hub.groups.get(message["group"], ())):
            subscriptions = getattr(window, "subscriptions", None)
            if not subscriptions or (id(window), resource) in self.told:
                continue
            if any(s.resource == resource and s.matches(pk) for s in subscriptions.values()):
                self.told.add((id(window), resource))
                metrics.increment("resync_overloaded")
                _send(window, frame)

    def first_time(self, message: dict[str, Any], windows: list[Any]) -> list[Any]:
        """Windows that have not yet received this event through another group."""
        if not message.get("multi"):
            return windows
        seen = self.recent.get(message["id"])
        if seen is None:
            seen = self.recent[message["id"]] = set()
        fresh = [w for w in windows if id(w) not in seen]
        seen.update(id(w) for w in fresh)
        self.recent_windows += len(fresh)
        while len(self.recent) > 1 and (
            len(self.recent) > RECENT_IDS or self.recent_windows > RECENT_WINDOWS
        ):
            for_size = len(self.recent) <= RECENT_IDS
            _, forgotten = self.recent.popitem(last=False)
            self.recent_windows -= len(forgotten)
            if for_size:
                # Forgotten for its size, not its age: a late copy of it through another
                # group could reach a window twice (same event id), so it is counted.
                metrics.increment("resource_dedup_evicted")
        return fresh


def on_message(hub: Any, message: dict[str, Any]) -> None:
    """The hub's handler for ``fc.resource``: queue the event (never waits)."""
    state = getattr(hub, "_rest_state", None)
    if state is None:
        state = hub._rest_state = _HubState(hub)
    try:
        state.queue.put_nowait(message)
    except asyncio.QueueFull:
        state.overflow(hub, message)


def _user_key(user: Any) -> Any:
    return user.pk if user.is_authenticated else None


def _ask_key(window: Any, sub: Any) -> tuple[Any, ...]:
    """Windows with equal keys get the same answer: same user, same GET, same origin."""
    return (_user_key(window.window.user), sub.action, sub.query, sub.origin)


def _fresh_user(user: Any) -> Any:
    """The user as the database has it now, or None if gone or inactive.

    Permissions and is_active may have changed since the window connected, and Django
    caches permissions on the user object.
    """
    if not user.is_authenticated:
        return user
    return type(user)._default_manager.filter(pk=user.pk, is_active=True).first()


def _answers(viewset: type, asks: dict[tuple[Any, ...], tuple[Any, Any, set[str]]]) -> dict[Any, Any]:
    """For each distinct ask and pk: the serialized object (True for id-only), or absent if
    invisible. One query per ask, whatever the number of pks."""
    results: dict[Any, Any] = {}
    users: dict[Any, Any] = {}
    for key, (window, sub, pks) in asks.items():
        user_key = key[0]
        if user_key not in users:
            users[user_key] = _fresh_user(window.window.user)
        user = users[user_key]
        if user is None:
            continue
        view = view_for(viewset, user, sub.action, window.scope, sub.query, sub.pk)
        visible = visible_objects(view, pks)
        if getattr(view, "live_payload", "data") == "id":
            results.update(((key, pk), True) for pk in visible)
        elif visible:
            # One serializer for the run, as a list GET does: its fields are built once.
            data = view.get_serializer(list(visible.values()), many=True).data
            results.update(((key, pk), item) for pk, item in zip(visible, data, strict=True))
    return results


async def deliver(hub: Any, state: _HubState, batch: list[dict[str, Any]]) -> None:
    """Deliver a run of events for one group, resource and action to this process's windows."""
    members = hub.groups.get(batch[0].get("group", ""))
    if not members:
        return
    resource, action = batch[0]["resource"], batch[0]["action"]
    subscribed = [w for w in members if w.subscriptions]
    todo: list[tuple[dict[str, Any], Any, Any]] = [
        (message, window, sub)
        for message in batch
        for window in state.first_time(message, subscribed)
        for sub in window.subscriptions.values()
        if sub.resource == resource and sub.matches(message["pk"])
    ]
    if not todo:
        return
    answers: dict[Any, Any] = {}
    if action != DELETED:
        asks: dict[tuple[Any, ...], tuple[Any, Any, set[str]]] = {}
        for message, window, sub in todo:
            key = _ask_key(window, sub)
            asks.setdefault(key, (window, sub, set()))[2].add(message["pk"])
        check = DatabaseSyncToAsync(_answers, thread_sensitive=False)
        answers = await check(todo[0][2].viewset, asks)
    for message, window, sub in todo:
        pk = message["pk"]
        frame = _frame_for(sub, action, pk, answers.get((_ask_key(window, sub), pk)), message["id"])
        if frame is None:
            continue
        if message.get("echo") is not None and window.window_id == message["echo"]:
            frame["echo"] = True
        metrics.increment(f"resource_events_{frame['action']}")
        _send(window, frame)


def _send(window: Any, frame: dict[str, Any]) -> None:
    try:
        text = protocol.encode(frame)
    except (TypeError, ValueError):
        # The serializer produced something that is not strict JSON (NaN, Infinity): the
        # browser would drop the frame, so it is never sent.
        metrics.increment("resource_events_unsendable")
        logger.exception(
            "A %s event of %s could not be encoded (window %s).",
            frame.get("action", frame["type"]),
            frame.get("resource"),
            window.window_id,
        )
        return
    if (len(text) if text.isascii() else len(text.encode())) > fc_settings.MAX_MESSAGE_SIZE:
        # Servers do not send such a message (daphne: over 1 MiB): the page refetches instead.
        metrics.increment("resource_events_unsendable")
        logger.error(
            "A %s event of %s is over MAX_MESSAGE_SIZE (%d characters); window %s is told to "
            "resync instead. Consider live_payload = 'id' for this resource.",
            frame.get("action"),
            frame.get("resource"),
            len(text),
            window.window_id,
        )
        text = protocol.encode({"type": "resync", "reason": "overloaded", "resource": frame.get("resource")})
    try:
        window.send_frame(text)
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
        kind = UPDATED if (action == UPDATED and was_known) else CREATED
        if known is not None and pk not in known:
            _track(sub, known, pk)
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


def _track(sub: Any, known: set[str], pk: str) -> None:
    """Record that ``sub`` was told about ``pk``, up to MAX_TRACKED_PKS pks.

    Past the bound the subscription stops recording, as one that saw too many at
    subscribe time: its deletions then reach it for any pk of the partition.
    """
    limit = fc_settings.MAX_TRACKED_PKS
    if len(known) < limit:
        known.add(pk)
        return
    sub.known = None
    metrics.increment("tracked_pks_overflow")
    logger.warning(
        "Subscription %r to %s passed MAX_TRACKED_PKS (%d): it no longer records the pks it "
        "was told about (deletions reach it for any pk).",
        sub.id,
        sub.resource,
        limit,
    )
