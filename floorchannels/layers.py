"""What floorchannels adds around channel layers: drops and failures made visible.

Channels' layers drop a group message for a member whose channel is full: the in-memory
layer silently, channels-redis with an INFO line. Both are loss nobody notices. Here every
drop increments the ``dropped`` counter and logs a WARNING naming the group. Failures the
pub/sub layer only logs (it reconnects by itself) are passed to the listeners of each event
loop (the hubs), which probe the layer and tell their sockets to resync.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.exceptions import ImproperlyConfigured

from . import metrics
from .conf import fc_settings
from .topics import layer_group

logger = logging.getLogger("floorchannels.layers")


def channel_layer() -> Any:
    """The channel layer floorchannels uses (``CHANNEL_LAYER`` setting)."""
    layer = get_channel_layer(fc_settings.CHANNEL_LAYER)
    if layer is None:
        raise ImproperlyConfigured(
            f"floorchannels needs CHANNEL_LAYERS[{fc_settings.CHANNEL_LAYER!r}] to be configured."
        )
    return layer


#: Per event loop, what to call when the layer reports a failure outside our own calls.
_failure_listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Callable[[], None]] = (
    weakref.WeakKeyDictionary()
)


def on_failure(callback: Callable[[], None]) -> None:
    """Call ``callback`` (in the running loop) whenever the layer reports an error."""
    _failure_listeners[asyncio.get_running_loop()] = callback


def failed() -> None:
    """Tell every listening loop that the layer failed; safe from any thread."""
    for loop, callback in list(_failure_listeners.items()):
        if not loop.is_closed():
            loop.call_soon_threadsafe(callback)


async def group_send(layer: Any, group: str, message: dict[str, Any]) -> None:
    """``layer.group_send`` to the layer group carrying ``group`` (see
    :func:`~floorchannels.topics.layer_group`), counting and logging the messages the
    layer drops. ``message["group"]`` names ``group`` itself, for the receiving hub."""
    group = layer_group(group)
    if isinstance(layer, InMemoryChannelLayer):
        # Its own group_send swallows ChannelFull; send member by member to see it.
        layer._clean_expired()
        for channel in list(layer.groups.get(group, {})):
            try:
                await layer.send(channel, message)
            except ChannelFull:
                _dropped(group, 1)
        return
    await layer.group_send(group, message)


def _dropped(group: str, count: int) -> None:
    metrics.increment("dropped", count)
    logger.warning(
        "The channel layer dropped %d message(s) for group %s: a channel is at capacity "
        "(see docs/deployment.md, Capacity).",
        count,
        group,
    )


class _CapacityFilter(logging.Filter):
    """Turns channels-redis' INFO "N of M channels over capacity in group G" into a drop."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "over capacity in group" in str(record.msg) and len(record.args or ()) == 3:
            count, _total, group = record.args
            _dropped(str(group), int(count))
        return True


class _PubSubFailureFilter(logging.Filter):
    """The pub/sub layer retries its Redis connection by itself and only logs the error:
    tell the hubs, which probe the layer and send ``resync`` once it works again."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            failed()
        return True


def watch_channels_redis() -> None:
    for name, watcher in (
        ("channels_redis.core", _CapacityFilter),
        ("channels_redis.pubsub", _PubSubFailureFilter),
    ):
        logger_ = logging.getLogger(name)
        if not any(isinstance(f, watcher) for f in logger_.filters):
            logger_.addFilter(watcher())
            # The record must reach the filter: the logger's level would discard INFO first.
            if logger_.getEffectiveLevel() > logging.INFO:
                logger_.setLevel(logging.INFO)
