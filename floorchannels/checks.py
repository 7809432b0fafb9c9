"""System checks: the mistakes that otherwise fail silently at run time."""

from __future__ import annotations

from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.checks import Error, Warning, register
from django.utils.module_loading import import_string

from .conf import fc_settings


@register()
def check_channel_layer(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    alias = fc_settings.CHANNEL_LAYER
    layers = getattr(settings, "CHANNEL_LAYERS", {}) or {}
    if alias not in layers:
        return [
            Error(
                f"CHANNEL_LAYERS has no {alias!r} layer.",
                hint="Add one: channels.layers.InMemoryChannelLayer for one process, "
                "channels_redis.pubsub.RedisPubSubChannelLayer for several.",
                id="floorchannels.E001",
            )
        ]
    try:
        backend = import_string(layers[alias]["BACKEND"])
        # An instance, not the class: the Redis pub/sub layer provides its methods per loop.
        layer = get_channel_layer(alias)
    except Exception as exc:
        return [Error(f"The {alias!r} channel layer cannot be loaded: {exc}", id="floorchannels.E002")]
    if not all(hasattr(layer, name) for name in ("group_add", "group_discard", "group_send")):
        return [
            Error(
                f"The {alias!r} channel layer ({backend.__name__}) does not support groups.",
                hint="floorchannels delivers through groups; use a layer with the groups extension.",
                id="floorchannels.E003",
            )
        ]
    return []


def _contains_consumer(app: Any, seen: set[int]) -> bool:
    """Walk routers and middleware looking for the floorchannels consumer."""
    from .consumers import SignalConsumer

    if app is None or id(app) in seen:
        return False
    seen.add(id(app))
    consumer = getattr(app, "consumer_class", None)
    if isinstance(consumer, type) and issubclass(consumer, SignalConsumer):
        return True
    children: list[Any] = []
    mapping = getattr(app, "application_mapping", None)
    if isinstance(mapping, dict):
        children.extend(mapping.values())
    for route in getattr(app, "routes", None) or []:
        children.append(getattr(route, "callback", None))
        children.extend(getattr(route, "url_patterns", None) or [])
    children.append(getattr(app, "inner", None))
    children.append(getattr(app, "application", None))
    return any(_contains_consumer(child, seen) for child in children)


@register()
def check_routing(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return [
            Error(
                "ASGI_APPLICATION is not set, so floorchannels' websocket route cannot be served.",
                hint="Point it at your asgi.py application, which includes floorchannels.routing.websocket_urlpatterns.",
                id="floorchannels.E004",
            )
        ]
    try:
        application = import_string(path)
    except Exception as exc:
        return [Error(f"ASGI_APPLICATION {path!r} cannot be imported: {exc}", id="floorchannels.E005")]
    if not _contains_consumer(application, set()):
        return [
            Warning(
                f"{path} does not route to floorchannels' websocket consumer.",
                hint="Add floorchannels.routing.websocket_urlpatterns to the 'websocket' URLRouter.",
                id="floorchannels.W001",
            )
        ]
    return []


@register()
def check_worker_command(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    from django.apps import apps

    from .registry import registry

    queues = registry.queues()
    if queues and not apps.is_installed("channels"):
        return [
            Warning(
                f"Signals use queues ({', '.join(sorted(queues))}) but 'channels' is not in INSTALLED_APPS, "
                "so `manage.py runworker` is not available to serve them.",
                hint="Add 'channels' to INSTALLED_APPS.",
                id="floorchannels.W002",
            )
        ]
    return []


@register()
def check_capacity(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Channels' default capacity (100) silently drops bursts on the hub's channel."""
    alias = fc_settings.CHANNEL_LAYER
    config = (getattr(settings, "CHANNEL_LAYERS", {}) or {}).get(alias) or {}
    backend = config.get("BACKEND", "")
    if "pubsub" in backend.lower():
        return []  # no capacity limit
    options = config.get("CONFIG") or {}
    capacity = options.get("capacity", 100)
    hub_capacity = max(
        [
            capacity,
            *(c for p, c in (options.get("channel_capacity") or {}).items() if "floorchannels-hub" in p),
        ]
    )
    if hub_capacity < 1000:
        return [
            Warning(
                f"The {alias!r} channel layer holds at most {hub_capacity} messages per channel: a burst "
                "larger than that to one process is dropped.",
                hint='Raise "capacity" (or "channel_capacity": {"floorchannels-hub*": 100000}); see docs/deployment.md.',
                id="floorchannels.W003",
            )
        ]
    return []
