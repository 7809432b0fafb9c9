"""The Redis connections floorchannels opens itself (history, presence), beside the layer's.

redis-py's asyncio clients belong to one event loop, so there is one client per loop, URL
and decoding mode.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from django.conf import settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, bool], Any]] = (
    weakref.WeakKeyDictionary()
)


def redis_client(url: str, decode_responses: bool = False) -> Any:
    """The running loop's client for ``url``."""
    import redis.asyncio as redis

    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get((url, decode_responses))
    if client is None:
        client = per_loop[(url, decode_responses)] = redis.Redis.from_url(
            url, decode_responses=decode_responses
        )
    return client


def layer_redis_url(layer_alias: str) -> str | None:
    """The first Redis host of a channel layer's config, or None for non-Redis layers."""
    config = (getattr(settings, "CHANNEL_LAYERS", {}) or {}).get(layer_alias) or {}
    if "redis" not in config.get("BACKEND", "").lower():
        return None
    host = ((config.get("CONFIG") or {}).get("hosts") or ["redis://localhost:6379"])[0]
    if isinstance(host, dict):
        host = host.get("address", "redis://localhost:6379")
    if isinstance(host, list | tuple):
        host = f"redis://{host[0]}:{host[1]}"
    return str(host)
