"""What floorchannels adds around channel layers: drops made visible.

Channels' layers drop a group message for a member whose channel is full: the in-memory
layer silently, channels-redis with an INFO line. Both are loss nobody notices. Here every
drop increments the ``dropped`` counter and logs a WARNING naming the group.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

from . import metrics
from .topics import layer_group

logger = logging.getLogger("floorchannels.layers")


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
            from .hub import layer_failed_everywhere

            layer_failed_everywhere()
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
