"""The registry of live resources: a name → the viewset that defines who sees what."""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..topics import serialize_topic

_resources: dict[str, type] = {}
_urlconf_loaded = False


def _dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(viewset: type) -> None:
    """Record ``viewset`` as the definition of its resource name.

    The viewset decides who sees what, so a name never silently changes hands: a subclass
    that keeps its parent's name takes it over (it is the more specific definition), the
    same class imported again replaces itself, and any other class claiming a taken name
    is an ``ImproperlyConfigured`` error.
    """
    name = resource_name(viewset)
    if name is None:
        return  # an abstract base: no queryset and no explicit name
    existing = _resources.get(name)
    if existing is None or existing is viewset:
        _resources[name] = viewset
    elif issubclass(existing, viewset):
        return  # a parent registering after its subclass (publish() with the parent)
    elif issubclass(viewset, existing) or _dotted(existing) == _dotted(viewset):
        _resources[name] = viewset
    else:
        raise ImproperlyConfigured(
            f"Live resource {name!r} is defined by both {_dotted(existing)} and {_dotted(viewset)}; "
            "give one of them its own live_resource."
        )


def resource_name(viewset: type) -> str | None:
    name = getattr(viewset, "live_resource", None)
    if name:
        return name
    queryset = getattr(viewset, "queryset", None)
    return queryset.model._meta.label_lower if queryset is not None else None


def get_resource(name: str) -> type | None:
    """The viewset of resource ``name``. Viewsets register when their module is imported,
    which for most projects is when the URLconf loads: a websocket may ask before any HTTP
    request did, so load the URLconf once on a miss."""
    global _urlconf_loaded
    viewset = _resources.get(name)
    if viewset is None and not _urlconf_loaded:
        from django.urls import get_resolver

        _urlconf_loaded = True
        get_resolver().url_patterns  # noqa: B018 - importing it registers the viewsets
        viewset = _resources.get(name)
    return viewset


def _same_for_str_and_int(partition: Any) -> Any:
    # A subscriber's partition often comes from the query string or URL kwargs ("7") and an
    # object's from a field (7): both must name one group. Partitions only narrow the
    # fan-out (the viewset still decides visibility), so merging them is safe.
    if isinstance(partition, int) and not isinstance(partition, bool):
        return str(partition)
    if isinstance(partition, tuple | list):
        return tuple(_same_for_str_and_int(part) for part in partition)
    return partition


def partition_group(resource: str, partition: Any) -> str:
    """The group of one partition of a resource: deterministic, valid, short."""
    key = serialize_topic(_same_for_str_and_int(partition))
    digest = hashlib.sha256(f"{resource}\x00{key}".encode()).hexdigest()[:40]
    return f"fc.r.{digest}"


def object_group(resource: str, pk: Any) -> str:
    """The group of windows subscribed to one object."""
    return partition_group(resource, ("pk", str(pk)))
