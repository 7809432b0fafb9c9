"""Publishing resource events: after commit, merged per object, to the object's partitions.

Events are collected per database transaction and sent by one callback that runs after the
commit, so a rolled-back transaction sends nothing, several saves of one object send one
event, and an object created and deleted in the same transaction sends nothing.

Only the object's pk crosses the channel layer. What each window receives (the serializer
output for its user, an id-only ``deleted``, or nothing) is decided where the window is
connected, by the viewset itself (see :mod:`floorchannels.rest.delivery`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import router, transaction

from .. import messages
from ..layers import channel_layer, group_send
from ..syncloop import run_sync
from .resources import object_group, partition_group, register, resource_name

logger = logging.getLogger("floorchannels.rest")

RESOURCE = messages.RESOURCE.name
CREATED, UPDATED, DELETED = "created", "updated", "deleted"


@dataclass
class Change:
    """Everything that happened to one object in one transaction."""

    resource: str
    pk: str
    first: str
    last: str
    groups: dict[str, None] = field(default_factory=dict)
    #: The window whose REST request made the change (verified): its copy is marked echo.
    echo: str | None = None

    @property
    def action(self) -> str | None:
        """The one event this transaction amounts to, or None."""
        if self.first == CREATED:
            return None if self.last == DELETED else CREATED
        return DELETED if self.last == DELETED else UPDATED


class _Flush:
    """The on-commit callback of one transaction; holds its merged changes."""

    def __init__(self) -> None:
        self.changes: dict[tuple[str, str], Change] = {}

    def add(self, resource: str, pk: str, action: str, groups: Iterable[str], echo: str | None) -> None:
        change = self.changes.get((resource, pk))
        if change is None:
            change = self.changes[(resource, pk)] = Change(resource, pk, action, action)
        change.last = action
        change.groups.update(dict.fromkeys(groups))
        change.echo = echo

    def __call__(self) -> None:
        # Group-major order: a group's events travel together, so the receiving process
        # checks visibility for a run of them with one query per recipient (delivery.py).
        by_group: dict[str, list[dict[str, Any]]] = {}
        for change in self.changes.values():
            action = change.action
            if action is None:
                continue
            message = messages.RESOURCE.build(
                id=uuid.uuid4().hex,
                resource=change.resource,
                action=action,
                pk=change.pk,
                echo=change.echo,
                multi=len(change.groups) > 1,
            )
            for group in change.groups:
                by_group.setdefault(group, []).append(dict(message, group=group))
        outgoing = [message for group in by_group.values() for message in group]
        if outgoing:
            try:
                run_sync(_send, outgoing)
            except Exception:
                # The data is committed; failing the request now would lie to the client.
                logger.exception("Could not publish %d resource event(s).", len(outgoing))


async def _send(messages: list[dict[str, Any]]) -> None:
    layer = channel_layer()
    for message in messages:
        await group_send(layer, message["group"], message)


def _pending_flush(using: str) -> _Flush:
    """This transaction's flush callback, registered on first use."""
    for _sids, func, _robust in transaction.get_connection(using).run_on_commit:
        if isinstance(func, _Flush):
            return func
    flush = _Flush()
    transaction.on_commit(flush, using=using)
    return flush


def _keep_last(using: str, flush: _Flush) -> None:
    # Each change is added by its own on_commit callback, which Django discards when the
    # savepoint it happened in rolls back. Keeping the flush after all of them means it
    # runs once, after the commit, and sends exactly what committed.
    hooks = transaction.get_connection(using).run_on_commit
    for index, (_sids, func, _robust) in enumerate(hooks):
        if func is flush:
            hooks.append(hooks.pop(index))
            return


def record(resource: str, pk: str, action: str, groups: Iterable[str], echo: str | None, using: str) -> None:
    """Add one change to the current transaction's flush (or send it now in autocommit)."""
    if action not in (CREATED, UPDATED, DELETED):
        raise ValueError(f"Unknown action {action!r}.")
    groups = list(groups)
    if not transaction.get_connection(using).in_atomic_block:
        flush = _Flush()
        flush.add(resource, pk, action, groups, echo)
        flush()
        return
    flush = _pending_flush(using)
    transaction.on_commit(lambda: flush.add(resource, pk, action, groups, echo), using=using)
    _keep_last(using, flush)


def groups_of(view: Any, obj: Any, partitions_before: Iterable[Any] = ()) -> list[str]:
    """The groups an event about ``obj`` goes to: its partitions (before and now), its own."""
    name = resource_name(type(view))
    partitions = [*partitions_before, *view.get_live_partitions(obj)]
    return [partition_group(name, p) for p in partitions] + [object_group(name, str(obj.pk))]


def publish(
    viewset: Any,
    obj: Any,
    action: str,
    *,
    partitions_before: Iterable[Any] = (),
    window_id: str | None = None,
) -> None:
    """Publish ``action`` (created/updated/deleted) for ``obj`` of a live resource.

    ``viewset`` is the viewset class or instance that defines the resource. Call it for
    deletions *before* deleting (the object's partitions are read from it), and pass the
    object's partitions from before an update in ``partitions_before`` so windows that
    could see it there hear that it moved. Runs after the current transaction commits.
    ``window_id`` marks the copy that window receives as its own (``echo``); pass only a
    window checked with :func:`floorchannels.windows.is_own_window`.
    """
    view = viewset() if isinstance(viewset, type) else viewset
    register(type(view))
    groups = groups_of(view, obj, partitions_before)
    record(resource_name(type(view)), str(obj.pk), action, groups, window_id, router.db_for_write(type(obj)))


def publish_queryset(viewset: Any, queryset: Any, action: str = UPDATED) -> None:
    """Publish ``action`` for every object of ``queryset`` of one viewset's resource.

    See :func:`floorchannels.rest.publish_many` to publish for every viewset observing a
    model, and :func:`floorchannels.rest.tracking` for ``queryset.update()``.
    """
    view = viewset() if isinstance(viewset, type) else viewset
    for obj in queryset:
        publish(view, obj, action)
