"""The Redis connections floorchannels opens itself (history, presence), beside the layer's.

redis-py's asyncio clients belong to one event loop, so there is one client per loop, URL
and decoding mode. Each sits on a bounded pool: redis-py's default pool opens a new
connection whenever every open one is busy and keeps it for good, so a reconnect storm
of 1,000 windows (each reading its history positions and joining its presence topics at
once) left a process holding about a thousand Redis connections. With
``REDIS_MAX_CONNECTIONS`` a command waits for a free connection instead, up to
``REDIS_POOL_TIMEOUT`` seconds, and then fails like any Redis error (counted as
``redis_pool_timeouts``).

A loop that is closed (``asyncio.run`` and ``async_to_sync`` close theirs) closes its
clients first: otherwise their sockets outlived it, one per closed loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import metrics
from .conf import fc_settings

logger = logging.getLogger("floorchannels.redis")

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, bool], Any]] = (
    weakref.WeakKeyDictionary()
)


def _redis() -> Any:
    """redis-py's asyncio module, or a clear error: it comes with the ``redis`` extra, which
    a project on the in-memory layer does without (system checks E006 and E007)."""
    try:
        import redis.asyncio
    except ImportError as exc:
        raise ImproperlyConfigured(
            'floorchannels keeps history and presence in Redis here, which needs redis-py: pip install "floorchannels[redis]"'
        ) from exc
    return redis.asyncio


@functools.cache
def _pool_class() -> type:
    base = _redis().BlockingConnectionPool
    from redis.exceptions import ConnectionError as RedisConnectionError

    class BoundedPool(base):
        """Counts the commands that gave up waiting for a connection."""

        async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return await super().get_connection(*args, **kwargs)
            except RedisConnectionError as exc:
                if isinstance(exc.__cause__, asyncio.TimeoutError):
                    metrics.increment("redis_pool_timeouts")
                raise

    return BoundedPool


def redis_client(url: str, decode_responses: bool = False) -> Any:
    """The running loop's client for ``url``."""
    redis = _redis()
    loop = asyncio.get_running_loop()
    per_loop = _clients.get(loop)
    if per_loop is None:
        per_loop = _clients[loop] = {}
        _close_with(loop)
    client = per_loop.get((url, decode_responses))
    if client is None:
        pool = _pool_class().from_url(
            url,
            decode_responses=decode_responses,
            max_connections=max(1, int(fc_settings.REDIS_MAX_CONNECTIONS)),
            timeout=fc_settings.REDIS_POOL_TIMEOUT,
        )
        client = per_loop[(url, decode_responses)] = redis.Redis.from_pool(pool)
    return client


def _close_with(loop: asyncio.AbstractEventLoop) -> None:
    """Close ``loop``'s clients when the loop is closed (as channels_redis does for its own)."""
    original = loop.close

    def close() -> None:
        clients = _clients.pop(loop, None)
        if clients and not loop.is_running() and not loop.is_closed():
            try:
                loop.run_until_complete(_close_all(list(clients.values())))
            except Exception:
                logger.warning("Could not close the Redis clients of a closing event loop.", exc_info=True)
        original()

    try:
        loop.close = close  # type: ignore[method-assign]
    except AttributeError:
        # A loop type without instance attributes (uvloop): server loops live as long as
        # the process, so there is nothing to release early.
        pass


async def _close_all(clients: list[Any]) -> None:
    for client in clients:
        await client.aclose(close_connection_pool=True)


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
