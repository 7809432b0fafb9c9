"""Model observers: a live resource's events for changes made by any code path.

``LiveResourceMixin`` alone publishes what goes through the viewset. Once a viewset observes
its model (:func:`observe`, called from an ``AppConfig.ready()``), a ``save()`` or
``delete()`` from the admin, the shell, a management command or a background task publishes
the same per-recipient, after-commit, merged events, and so do many-to-many changes. Bulk
operations, which send no model signals, publish through :func:`publish_many` and
:func:`tracking`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import router
from django.db.models import Model, QuerySet
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from .events import CREATED, DELETED, UPDATED, groups_of, publish, record
from .resources import register, resource_name

#: model (concrete) → the viewsets observing it, in registration order.
_observers: dict[type[Model], list[type]] = {}
#: The verified window of the REST request that is making changes (see LiveResourceMixin).
_requester: ContextVar[str | None] = ContextVar("floorchannels_requester", default=None)
#: Where pre_save leaves an object's partitions from before the save, per viewset.
_BEFORE = "_floorchannels_partitions_before"


def observe(viewset: type, model: type[Model] | None = None) -> None:
    """Publish ``viewset``'s live events for every change of ``model`` (default: the
    model of the viewset's ``queryset``). Idempotent; call it from ``AppConfig.ready()``."""
    if model is None:
        queryset = getattr(viewset, "queryset", None)
        if queryset is None:
            raise ImproperlyConfigured(
                f"observe({viewset.__qualname__}) needs model=...: the viewset has no queryset attribute."
            )
        model = queryset.model
    register(viewset)
    if resource_name(viewset) is None:
        raise ImproperlyConfigured(f"{viewset.__qualname__} is not a live resource (no live_resource).")
    viewsets = _observers.setdefault(model._meta.concrete_model, [])
    if viewset not in viewsets:
        viewsets.append(viewset)
    _connect()


def observers_of(model: type[Model]) -> list[type]:
    """The viewsets observing ``model`` (or one of its parents)."""
    found: list[type] = []
    for cls in (model._meta.concrete_model, *model._meta.get_parent_list()):
        found.extend(v for v in _observers.get(cls, ()) if v not in found)
    return found


def is_observed(viewset: type, model: type[Model]) -> bool:
    """True when an observer of ``model`` publishes ``viewset``'s resource."""
    name = resource_name(viewset)
    return any(resource_name(observer) == name for observer in observers_of(model))


@contextmanager
def requested_by(window_id: str | None) -> Iterator[None]:
    """Mark the changes made inside as made by ``window_id``'s REST request (``echo``)."""
    token = _requester.set(window_id)
    try:
        yield
    finally:
        _requester.reset(token)


def publish_many(objects: Iterable[Model], action: str = UPDATED, *, viewset: type | None = None) -> int:
    """Publish ``action`` for each object, for every viewset observing its model (or only
    ``viewset``), in one pass: after ``bulk_create()`` (objects with pks) or ``bulk_update()``.
    Returns the number of objects published."""
    count = 0
    views: dict[type, list[Any]] = {}
    for obj in objects:
        model = type(obj)
        if model not in views:
            classes = [viewset] if viewset is not None else observers_of(model)
            if not classes:
                raise ImproperlyConfigured(f"No live viewset observes {model._meta.label}; pass viewset=.")
            views[model] = [cls() for cls in classes]
        for view in views[model]:
            publish(view, obj, action, window_id=_requester.get())
        count += 1
    return count


@contextmanager
def tracking(queryset: QuerySet[Any], *, viewset: type | None = None) -> Iterator[QuerySet[Any]]:
    """Publish what a ``queryset.update()`` (or raw SQL) changes: the objects are read before
    (their pks and partitions) and after the block, so windows also hear of objects that
    left their partition or were deleted::

        with tracking(Task.objects.filter(project=project)) as tasks:
            tasks.update(done=True)
    """
    model = queryset.model
    classes = [viewset] if viewset is not None else observers_of(model)
    if not classes:
        raise ImproperlyConfigured(f"No live viewset observes {model._meta.label}; pass viewset=.")
    views = [cls() for cls in classes]
    before = {obj.pk: [view.get_live_partitions(obj) for view in views] for obj in queryset}
    yield queryset
    using = router.db_for_write(model)
    after = {obj.pk: obj for obj in model._base_manager.using(using).filter(pk__in=list(before))}
    echo = _requester.get()
    for pk, partitions in before.items():
        obj = after.get(pk)
        for view, old in zip(views, partitions, strict=True):
            name = resource_name(type(view))
            if obj is None:
                groups = groups_of(view, _Gone(pk), old)
                record(name, str(pk), DELETED, groups, echo, using)
            else:
                record(name, str(pk), UPDATED, groups_of(view, obj, old), echo, using)


class _Gone:
    """A deleted object's pk, for groups_of with no partitions of its own left."""

    def __init__(self, pk: Any) -> None:
        self.pk = pk


def _overrides_partitions(viewset: type) -> bool:
    # LiveResourceMixin's own get_live_partitions (one partition for all) is marked.
    return not getattr(viewset.get_live_partitions, "single_partition", False)


# -- signal handlers: connected once, for every model; they look the sender up ---------------


def _on_pre_save(sender: type[Model], instance: Model, raw: bool = False, **kwargs: Any) -> None:
    if raw or instance._state.adding or instance.pk is None:
        return
    viewsets = [v for v in observers_of(sender) if _overrides_partitions(v)]
    if not viewsets:
        return  # partitions cannot move: nothing to read
    old = sender._base_manager.using(kwargs.get("using")).filter(pk=instance.pk).first()
    if old is not None:
        instance.__dict__[_BEFORE] = {v: v().get_live_partitions(old) for v in viewsets}


def _on_post_save(
    sender: type[Model], instance: Model, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    viewsets = observers_of(sender)
    before = instance.__dict__.pop(_BEFORE, {})
    if raw or not viewsets:
        return
    action = CREATED if created else UPDATED
    for viewset in viewsets:
        publish(
            viewset, instance, action, partitions_before=before.get(viewset, ()), window_id=_requester.get()
        )


def _on_post_delete(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    for viewset in observers_of(sender):
        publish(viewset, instance, DELETED, window_id=_requester.get())


def _on_m2m_changed(
    sender: type[Model],
    instance: Model,
    action: str,
    model: type[Model],
    pk_set: set[Any] | None,
    **kwargs: Any,
) -> None:
    if action == "pre_clear":
        if observers_of(model):
            instance.__dict__.setdefault("_floorchannels_cleared", {})[sender] = _related_pks(
                sender, instance, model
            )
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if observers_of(type(instance)):
        publish_many([instance])
    if action == "post_clear":
        pk_set = instance.__dict__.get("_floorchannels_cleared", {}).pop(sender, None)
    if pk_set and observers_of(model):
        publish_many(model._base_manager.filter(pk__in=pk_set))


def _related_pks(through: type[Model], instance: Model, model: type[Model]) -> set[Any]:
    """The pks of ``model`` linked to ``instance`` through ``through`` (before a clear)."""
    source = [
        f for f in through._meta.concrete_fields if f.is_relation and isinstance(instance, f.related_model)
    ]
    target = [f for f in through._meta.concrete_fields if f.is_relation and f.related_model is model]
    pks: set[Any] = set()
    for s in source:
        for t in target:
            if s is not t:
                pks.update(
                    through._base_manager.filter(**{s.attname: instance.pk}).values_list(t.attname, flat=True)
                )
    return pks


def _connect() -> None:
    pre_save.connect(_on_pre_save, dispatch_uid="floorchannels.rest.observers.pre_save")
    post_save.connect(_on_post_save, dispatch_uid="floorchannels.rest.observers.post_save")
    post_delete.connect(_on_post_delete, dispatch_uid="floorchannels.rest.observers.post_delete")
    m2m_changed.connect(_on_m2m_changed, dispatch_uid="floorchannels.rest.observers.m2m_changed")
