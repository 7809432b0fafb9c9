"""Topics and the channel-layer group names they map to.

Group names must be identical in every process (so never ``hash()``, which is salted per
process), valid for Channels (ASCII letters, digits, ``-``, ``_``, ``.``; under 100 chars)
and stable across releases, because two versions may run side by side during a deploy.
A topic is serialised canonically to JSON, then hashed with sha256.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any

from django.db.models import Model

from .conf import fc_settings

BROADCAST_GROUP = "fc.all"
_PREFIX_WINDOW = "fc.w."
_PREFIX_USER = "fc.u."
_PREFIX_TOPIC = "fc.t."
_PREFIX_SHARD = "fc.s."


class CanonicalTopic(str):
    """A topic already in canonical form (as window keys carry them)."""


def serialize_topic(topic: Any) -> str:
    """Return the canonical string for a topic.

    Strings, ints and booleans stand for themselves; a model instance is
    ``app_label.model_name:pk``; tuples and lists combine the above in order.
    """
    if isinstance(topic, CanonicalTopic):
        return str(topic)
    return json.dumps(_canonical(topic), ensure_ascii=False, separators=(",", ":"))


def _canonical(topic: Any) -> Any:
    if isinstance(topic, str | bool | int):
        return topic
    if isinstance(topic, Model):
        if topic.pk is None:
            raise ValueError(f"An unsaved {type(topic).__name__} cannot be a topic.")
        meta = topic._meta
        return {"model": f"{meta.app_label}.{meta.model_name}", "pk": str(topic.pk)}
    if isinstance(topic, tuple | list):
        return [_canonical(part) for part in topic]
    raise TypeError(
        f"A topic is a string, an int, a model instance or a tuple of those, not {type(topic).__name__}."
    )


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:40]


def topic_group(serialized: str) -> str:
    """Group name for a topic already passed through :func:`serialize_topic`."""
    return _PREFIX_TOPIC + _digest(serialized)


def group_for_topic(topic: Any) -> str:
    return topic_group(serialize_topic(topic))


def window_group(window_id: str) -> str:
    return _PREFIX_WINDOW + window_id


def user_group(user_pk: Any) -> str:
    """Group of every window of one user. The pk is hashed so its type and size don't matter."""
    return _PREFIX_USER + _digest(str(user_pk))


def layer_group(group: str) -> str:
    """The channel-layer group that carries ``group``'s messages.

    Topics and BROADCAST are layer groups of their own. Window and user groups, of which
    there is one per tab and per user, share ``PRIVATE_GROUP_SHARDS`` layer groups: the
    hub keeps the window-level routing itself (messages say their own group), so the
    layer sees a bounded set of groups and a new tab rarely needs a layer round trip.
    """
    shards = fc_settings.PRIVATE_GROUP_SHARDS
    if shards and group.startswith((_PREFIX_WINDOW, _PREFIX_USER)):
        return f"{_PREFIX_SHARD}{zlib.crc32(group.encode()) % shards}"
    return group
