"""The messages floorchannels sends through the channel layer: their types and fields.

Processes of different releases share one layer during a rolling deploy, and a layer is a
shared bus anything can write to. A message of a shape this process does not know must
never reach code that assumes its fields: :func:`check` tells a well-formed message from
the rest, and the receiver counts, logs (once per kind) and skips what it cannot use.

Every message carries ``v``, the version of this schema. A message without ``v`` comes
from a release before versioning and is read as version 1; a greater version is refused,
since its fields may mean something else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from . import metrics

logger = logging.getLogger("floorchannels.messages")

VERSION = 1

_NUMBER = (int, float)
_NONE = type(None)


@dataclass(frozen=True)
class MessageType:
    """A layer message type: its required fields and its optional ones, with their types."""

    name: str
    required: dict[str, tuple[type, ...]]
    optional: dict[str, tuple[type, ...]]

    def build(self, **fields: Any) -> dict[str, Any]:
        """A message of this type (not checked: the sender is this release)."""
        return {"type": self.name, "v": VERSION, **fields}


#: A signal frame for the local members of ``group``; ``frame`` is already encoded.
DELIVER = MessageType(
    "fc.deliver",
    {"id": (str,), "group": (str,), "frame": (str,)},
    {"multi": (bool,), "eta": (*_NUMBER, _NONE), "expires": (*_NUMBER, _NONE)},
)
#: A queued server signal for a worker (see floorchannels.worker).
RUN = MessageType(
    "fc.run",
    {"id": (str,), "queue": (str,), "signal": (str,), "kwargs": (dict,), "window": (dict,)},
    {"eta": (*_NUMBER, _NONE), "expires": (*_NUMBER, _NONE)},
)
#: A hub's message to itself, proving the layer carries messages again.
PROBE = MessageType("fc.probe", {"token": (str,)}, {})
#: Close the windows of a user's group (of one session when ``session`` is given).
REVOKE = MessageType("fc.revoke", {"group": (str,), "reason": (str,)}, {"session": (str, _NONE)})
#: A window's newest socket announces itself: older sockets of the window close (4409).
REPLACE = MessageType("fc.replace", {"group": (str,), "keep": (str,), "at": _NUMBER}, {})
#: Several windows' newest sockets, announced together: ``windows`` is a list of
#: ``[group, keep, at]`` (see revocation.announce_window). Releases before it read only
#: ``fc.replace``; during a rolling deploy they skip these (counted, logged once), so an
#: older socket in such a process stays open until that process is replaced.
REPLACE_MANY = MessageType("fc.replace_many", {"windows": (list,)}, {})
#: A live resource changed (see floorchannels.rest.events).
RESOURCE = MessageType(
    "fc.resource",
    {"id": (str,), "group": (str,), "resource": (str,), "action": (str,), "pk": (str,)},
    {"echo": (str, _NONE), "multi": (bool,)},
)

#: Put a window in a topic, or take it out (see floorchannels.joins): ``action`` is ``grant``
#: or ``revoke``, ``topic`` the canonical topic.
TOPIC = MessageType("fc.topic", {"group": (str,), "action": (str,), "topic": (str,)}, {"presence": (bool,)})

TYPES: dict[str, MessageType] = {
    t.name: t for t in (DELIVER, RUN, PROBE, REVOKE, REPLACE, REPLACE_MANY, RESOURCE, TOPIC)
}


class InvalidMessage(Exception):
    """A layer message this process cannot use; ``kind`` names it for counting and logs."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


def check(message: Any) -> MessageType:
    """The type of a well-formed ``message``; raises :class:`InvalidMessage` otherwise."""
    if not isinstance(message, dict):
        raise InvalidMessage(type(message).__name__[:40], "not a dict")
    name = message.get("type")
    kind = name[:80] if isinstance(name, str) else repr(name)[:80]
    message_type = TYPES.get(name) if isinstance(name, str) else None
    if message_type is None:
        raise InvalidMessage(kind, "unknown type")
    version = message.get("v", 1)
    if version != VERSION:
        raise InvalidMessage(kind, f"schema version {str(version)[:20]} (this release reads {VERSION})")
    for field, types in message_type.required.items():
        value = message.get(field)
        if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
            raise InvalidMessage(kind, f"field {field!r} missing or not {_names(types)}")
    for field, types in message_type.optional.items():
        if field in message:
            value = message[field]
            if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
                raise InvalidMessage(kind, f"field {field!r} is not {_names(types)}")
    return message_type


def accept(message: Any, expected: MessageType, where: str) -> bool:
    """Whether ``message`` is a well-formed ``expected`` message; if not, it is skipped
    (counted and logged, see :func:`skip`) and the caller moves on."""
    try:
        if check(message) is not expected:
            raise InvalidMessage(message["type"], f"not for {where}")
    except InvalidMessage as invalid:
        skip(invalid, where)
        return False
    return True


def _names(types: tuple[type, ...]) -> str:
    return " or ".join("None" if t is _NONE else t.__name__ for t in types)


#: (kind, reason) pairs already logged; bounded so a stream of odd messages cannot grow it.
_logged: set[tuple[str, str]] = set()
_MAX_LOGGED = 256


def skip(error: InvalidMessage, where: str) -> None:
    """Count a message that was skipped, and log its kind the first time it is seen."""
    metrics.increment("layer_messages_invalid")
    key = (error.kind, error.reason)
    if key not in _logged and len(_logged) < _MAX_LOGGED:
        _logged.add(key)
        logger.warning(
            "Skipped a channel layer message on %s: %s. Further ones of this kind are only "
            "counted (metric layer_messages_invalid).",
            where,
            error,
        )
