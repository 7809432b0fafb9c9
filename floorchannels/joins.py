"""Topics a window joins and leaves while it is open.

A window key grants topics when the page is rendered; a chat that changes room, a page
that opens a document, need more without a reconnect. Two ways, both decided on the
server:

- the browser asks (``join`` / ``leave`` frames). Only topics matching a pattern the project
  declared in ``FLOORCHANNELS["TOPICS"]`` can be joined, and only when that pattern's
  permission says yes for this window: ``{"room.{name}": "chat.permissions.may_join_room"}``
  calls ``may_join_room(window, name="lobby")`` for ``"room.lobby"``. A topic matching no
  pattern is refused: nothing can be joined that the project did not declare;
- Python grants or revokes a topic to an open window (:func:`grant_topic`,
  :func:`revoke_topic`), from a view, a signal handler, a worker: a layer message to the
  window's group, so it reaches the window in whichever process holds it. Python is
  trusted, so no pattern is needed.

The declaration is a setting rather than a decorator: it is read in one place, visible in
``settings.py`` next to ``KEY_TOPICS``, and nothing depends on which modules were imported.

What a window is in lives where every topic of it already lives, in its key: after each
change the server sends the window a fresh key (``refresh``) listing its topics. A reconnect
therefore presents them, is in their groups before its ``welcome`` and has them covered by
its ``resume``, like any topic the view granted, with no state kept on the server. A key
fetched anew (``getWindowKey``, after 4410) describes a new window: its ``hello`` lists the
topics to join again (``topics``), each checked like a ``join``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from channels.db import DatabaseSyncToAsync
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from . import messages, metrics, presence, protocol
from .conf import fc_settings
from .history import alias, get_history
from .layers import channel_layer, group_send
from .syncloop import run_sync
from .tasks import spawn
from .topics import serialize_topic, topic_group, window_group
from .windows import WindowInfo, WindowKeyTooLarge, check_size, sign

logger = logging.getLogger("floorchannels.joins")

#: Frames of this module: answered by a reply carrying their id.
FRAMES = ("join", "leave")
#: Longest topic a browser may name, in characters.
MAX_TOPIC_LENGTH = 200

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Refused(Exception):
    """A join this window may not make; ``code`` is the error code the browser gets."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Declared patterns ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TopicPattern:
    """One entry of ``FLOORCHANNELS["TOPICS"]``: a pattern and who may join what it matches."""

    pattern: str
    regex: re.Pattern[str]
    permission: Callable[..., Any]

    def match(self, topic: str) -> dict[str, str] | None:
        found = self.regex.fullmatch(topic)
        return None if found is None else found.groupdict()


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``"room.{name}"`` → a regex where each ``{placeholder}`` is one or more characters
    other than ``.``, and everything else is literal."""
    parts, names, end = [], set(), 0
    literals = _PLACEHOLDER.split(pattern)[::2]
    if any("{" in literal or "}" in literal for literal in literals):
        raise ImproperlyConfigured(
            f"FLOORCHANNELS['TOPICS'] pattern {pattern!r}: a placeholder is {{name}}, a Python identifier."
        )
    for placeholder in _PLACEHOLDER.finditer(pattern):
        name = placeholder.group(1)
        if name in names:
            raise ImproperlyConfigured(f"FLOORCHANNELS['TOPICS'] pattern {pattern!r} names {{{name}}} twice.")
        names.add(name)
        parts.append(re.escape(pattern[end : placeholder.start()]))
        parts.append(f"(?P<{name}>[^.]+)")
        end = placeholder.end()
    parts.append(re.escape(pattern[end:]))
    return re.compile("".join(parts))


def topic_patterns() -> list[TopicPattern]:
    """The declared patterns, in the order of the setting (the first match decides)."""
    declared = fc_settings.TOPICS
    if not isinstance(declared, dict):
        raise ImproperlyConfigured("FLOORCHANNELS['TOPICS'] must be a dict {pattern: permission}.")
    return _compiled(tuple(declared.items()))


@functools.lru_cache(maxsize=16)
def _compiled(items: tuple[tuple[Any, Any], ...]) -> list[TopicPattern]:
    compiled = []
    for pattern, permission in items:
        if not isinstance(pattern, str) or not pattern:
            raise ImproperlyConfigured(f"FLOORCHANNELS['TOPICS']: the pattern {pattern!r} is not a string.")
        if isinstance(permission, str):
            try:
                permission = import_string(permission)
            except ImportError as exc:
                raise ImproperlyConfigured(
                    f"FLOORCHANNELS['TOPICS'][{pattern!r}] cannot be imported: {exc}"
                ) from exc
        if not callable(permission):
            raise ImproperlyConfigured(f"FLOORCHANNELS['TOPICS'][{pattern!r}] is not callable.")
        compiled.append(TopicPattern(pattern, compile_pattern(pattern), permission))
    return compiled


def find_pattern(topic: str) -> tuple[TopicPattern, dict[str, str]] | None:
    """The first declared pattern matching ``topic``, with what its placeholders captured."""
    for declared in topic_patterns():
        captured = declared.match(topic)
        if captured is not None:
            return declared, captured
    return None


async def check_join(window: WindowInfo, topic: str) -> None:
    """Raise :class:`Refused` unless ``window`` may join the string ``topic``.

    The permission runs in a thread when it is synchronous (it may query the database), on
    the loop when it is a coroutine function. An exception it raises propagates (the caller
    logs it and answers ``server_error``).
    """
    found = find_pattern(topic)
    if found is None:
        raise Refused(protocol.FORBIDDEN, f"No topic pattern matches {topic[:MAX_TOPIC_LENGTH]!r}.")
    declared, captured = found
    permission = declared.permission
    if asyncio.iscoroutinefunction(permission):
        allowed = await permission(window, **captured)
    else:
        allowed = await DatabaseSyncToAsync(permission, thread_sensitive=False)(window, **captured)
    if not allowed:
        raise Refused(protocol.FORBIDDEN, f"This window may not join {topic!r}.")


def _browser_topic(value: Any) -> str:
    """A topic a browser names: a non-empty string of at most MAX_TOPIC_LENGTH characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_TOPIC_LENGTH:
        raise Refused(
            protocol.INVALID_FRAME, f"'topic' must be a string of 1 to {MAX_TOPIC_LENGTH} characters."
        )
    return value


# Changing an open window's topics ---------------------------------------------------------


def describe(canonical: str, window: WindowInfo) -> dict[str, Any]:
    """How a topic is shown to its window: the topic as the application named it (a string
    topic is that string; a composite one, its JSON form decoded), its group alias ``g`` (the
    ``g`` of its signal frames), and whether the window is listed in its presence."""
    return {
        "topic": json.loads(canonical),
        "g": alias(topic_group(canonical)),
        "presence": canonical in window.presence,
    }


def _check_room(window: WindowInfo) -> None:
    if len(window.topics) >= fc_settings.MAX_TOPICS:
        raise Refused(
            protocol.TOO_MANY_TOPICS, f"This window is in {len(window.topics)} topics already (MAX_TOPICS)."
        )


def _candidate(window: WindowInfo, topics: tuple[str, ...], shown: tuple[str, ...]) -> tuple[WindowInfo, str]:
    """The window with these topics and its key; :class:`Refused` when the key could not
    open a socket any more (too large for the server to read)."""
    candidate = dataclasses.replace(window, topics=topics, presence=shown)
    key = sign(candidate)
    try:
        check_size(candidate, key)
    except WindowKeyTooLarge:
        raise Refused(
            protocol.TOO_MANY_TOPICS, "The window's key could not list one more topic (MAX_FRAME_SIZE)."
        ) from None
    return candidate, key


def _adopt(consumer: Any, candidate: WindowInfo) -> None:
    window = consumer.window
    window.topics, window.presence, window.issued_at = (
        candidate.topics,
        candidate.presence,
        candidate.issued_at,
    )


def _refresh_frame(consumer: Any, key: str) -> str:
    return protocol.encode({"type": "refresh", "window_key": key, "key_expires": consumer.window.expires})


async def enter(
    consumer: Any, canonical: str, shown: bool, first: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    """Put an open window in topic ``canonical`` (listed in its presence when ``shown``).

    ``first(state)`` is the frame that tells the window (a join's reply, or a ``topic``
    frame for a grant): it is written before any signal of the topic, with the group's
    position in ``state`` (``e``, ``seq``), so the client can resume the topic from there
    even if the socket drops before its first message. Then a ``refresh`` with the key
    listing the topic. Call with the consumer's topic lock held.
    """
    window = consumer.window
    new = canonical not in window.topics
    if new:
        _check_room(window)
    add_presence = shown and canonical not in window.presence
    topics = (*window.topics, canonical) if new else window.topics
    presence_topics = (*window.presence, canonical) if add_presence else window.presence
    candidate, key = _candidate(window, topics, presence_topics)
    group = topic_group(canonical)
    # Live frames of the topic wait until its first frame is written (see the docstring).
    consumer.hold()
    adopted = False
    try:
        if new:
            await consumer.hub.join(consumer, [group])
            consumer.add_group(group)
        _adopt(consumer, candidate)
        adopted = True
        state = describe(canonical, window)
        history = get_history()
        if history is not None:
            try:
                epoch, positions = await history.positions([group])
                state["e"], state["seq"] = epoch, f"{positions[group]}-0"
                if positions[group]:
                    consumer.floor_at(group, epoch, positions[group])
            except Exception:
                logger.exception("Could not read the history position of a joined topic (window %s).",
                                 consumer.window_id)  # fmt: skip
        consumer.push(protocol.encode(first(state)))
        consumer.push(_refresh_frame(consumer, key))
    finally:
        if new and not adopted:  # cancelled (timeout) or failed: not half in the topic
            consumer.hub.leave(consumer, [group])
            consumer.remove_group(group)
        consumer.release_held()
    # A window closed meanwhile has had its presence taken down: not listed again.
    if add_presence and not consumer.closed:
        try:
            await presence.join(consumer, [canonical])
        except Exception:  # the window is in the topic; only its presence entry is missing
            logger.exception("Presence join failed (window %s).", consumer.window_id)


async def exit_topic(
    consumer: Any, canonical: str, first: Callable[[dict[str, Any]], dict[str, Any]]
) -> bool:
    """Take an open window out of topic ``canonical``; False when it was not in it.

    From the moment this returns nothing of the topic reaches the window; ``first(state)``
    tells it so, followed by a ``refresh`` with the key without the topic.
    """
    window = consumer.window
    if canonical not in window.topics:
        return False
    shown = canonical in window.presence
    state = describe(canonical, window)
    candidate, key = _candidate(
        window,
        tuple(t for t in window.topics if t != canonical),
        tuple(t for t in window.presence if t != canonical),
    )
    group = topic_group(canonical)
    consumer.hub.leave(consumer, [group])
    consumer.remove_group(group)
    _adopt(consumer, candidate)
    state["presence"] = False
    consumer.push(protocol.encode(first(state)))
    consumer.push(_refresh_frame(consumer, key))
    if shown:
        try:
            await presence.leave(consumer, [canonical])
        except Exception:  # the entry is no longer renewed: it expires within two heartbeats
            logger.exception("Presence leave failed (window %s).", consumer.window_id)
    return True


# Frames from the browser -------------------------------------------------------------------


async def answer(consumer: Any, frame: dict[str, Any]) -> str:
    """Answer a ``join`` or ``leave`` frame, writing the reply itself (a join's reply must
    come before the topic's first signal); returns the outcome for the metrics (``ok`` or an
    error code)."""
    call_id = frame["id"]
    outcome = "ok"

    def reply(state: dict[str, Any]) -> dict[str, Any]:
        return protocol.reply_ok(call_id, state)

    try:
        async with asyncio.timeout(fc_settings.CALL_TIMEOUT), consumer.topic_lock():
            if frame["type"] == "join":
                await _join(consumer, frame, reply)
            else:
                await _leave(consumer, frame, reply)
    except Refused as refusal:
        outcome = refusal.code
        consumer.push(protocol.encode(protocol.reply_error(call_id, refusal.code, refusal.message)))
    except TimeoutError:
        outcome = protocol.TIMEOUT
        logger.error("A %s timed out (window %s).", frame["type"], consumer.window_id)
        consumer.push(protocol.encode(protocol.reply_error(call_id, outcome, "The request took too long.")))
    except Exception:
        outcome = protocol.SERVER_ERROR
        logger.exception("A %s failed (window %s).", frame["type"], consumer.window_id,
                         extra={"window_id": consumer.window_id})  # fmt: skip
        consumer.push(
            protocol.encode(
                protocol.reply_error(call_id, outcome, f"The {frame['type']} failed on the server.")
            )
        )
    metrics.increment(f"{frame['type']}_{outcome}")
    return outcome


async def _join(consumer: Any, frame: dict[str, Any], reply: Callable[..., dict[str, Any]]) -> None:
    topic = _browser_topic(frame.get("topic"))
    shown = frame.get("presence", False)
    if not isinstance(shown, bool):
        raise Refused(protocol.INVALID_FRAME, "'presence' must be true or false.")
    canonical = serialize_topic(topic)
    if canonical not in consumer.window.topics:
        _check_room(consumer.window)  # before the permission: a full window costs no query
        await check_join(consumer.window, topic)
    await enter(consumer, canonical, shown, reply)


async def _leave(consumer: Any, frame: dict[str, Any], reply: Callable[..., dict[str, Any]]) -> None:
    canonical = serialize_topic(_browser_topic(frame.get("topic")))
    if not await exit_topic(consumer, canonical, reply):
        # Idempotent: a window that is not in the topic has left it.
        state = describe(canonical, consumer.window)
        consumer.push(protocol.encode(reply(state)))


async def restore(consumer: Any, requested: Any) -> bool:
    """Join the topics a ``hello`` asks for again (``topics``: what the client had joined,
    presented with a key that does not list them, e.g. a new one from ``getWindowKey``).

    Runs before the window joins its groups, so its ``resume`` covers these topics. Each is
    checked like a ``join``; one that is refused, malformed or past ``MAX_TOPICS`` is left
    out (the ``welcome`` lists the topics the window is in). True when any was added.
    """
    if not isinstance(requested, list):
        return False
    window = consumer.window
    topics, shown = list(window.topics), list(window.presence)
    for entry in requested[: fc_settings.MAX_TOPICS]:
        topic, wants_presence = (entry, False) if not isinstance(entry, dict) else (
            entry.get("topic"), entry.get("presence") is True)  # fmt: skip
        try:
            topic = _browser_topic(topic)
            canonical = serialize_topic(topic)
            if canonical not in topics:
                if len(topics) >= fc_settings.MAX_TOPICS:
                    raise Refused(protocol.TOO_MANY_TOPICS, "MAX_TOPICS")
                await check_join(window, topic)
                _candidate(window, (*topics, canonical), tuple(shown))  # the key must still fit
                topics.append(canonical)
            if wants_presence and canonical not in shown:
                shown.append(canonical)
        except Refused as refusal:
            metrics.increment(f"rejoin_{refusal.code}")
            logger.info("Window %s did not get %r back: %s", consumer.window_id, topic, refusal.message)
        except Exception:
            logger.exception("Checking a topic to join again failed (window %s).", consumer.window_id)
    if tuple(topics) == window.topics and tuple(shown) == window.presence:
        return False
    window.topics, window.presence = tuple(topics), tuple(shown)
    return True


# Python API --------------------------------------------------------------------------------


def _window_group(window: WindowInfo | str) -> str:
    window_id = window if isinstance(window, str) else getattr(window, "window_id", None)
    if not isinstance(window_id, str) or not window_id:
        raise ValueError("grant_topic()/revoke_topic() need a browser window (a WindowInfo or a window id).")
    return window_group(window_id)


async def agrant_topic(window: WindowInfo | str, topic: Any, *, presence: bool = False) -> None:
    """Put the open window ``window`` (its ``WindowInfo``, or its id) in ``topic``, in
    whichever process holds it; with ``presence=True`` it is listed in the topic's presence.

    The window is told (a ``topic`` frame, ``action: "joined"``) and gets a key that lists
    the topic, so it stays in it across reconnects. Not checked against
    ``FLOORCHANNELS["TOPICS"]``: Python code is trusted. A window that is not connected
    now is not reached (nothing waits for it); a window already in ``MAX_TOPICS`` topics is
    not put in one more (logged as a WARNING).
    """
    group = _window_group(window)
    message = messages.TOPIC.build(
        group=group, action="grant", topic=serialize_topic(topic), presence=bool(presence)
    )
    await group_send(channel_layer(), group, message)


async def arevoke_topic(window: WindowInfo | str, topic: Any) -> None:
    """Take the open window ``window`` out of ``topic``, be it joined, granted or in its
    key; it is told (``topic`` frame, ``action: "left"``) and gets a key without it."""
    group = _window_group(window)
    message = messages.TOPIC.build(group=group, action="revoke", topic=serialize_topic(topic))
    await group_send(channel_layer(), group, message)


def grant_topic(window: WindowInfo | str, topic: Any, *, presence: bool = False) -> None:
    """Synchronous twin of :func:`agrant_topic` (views, signal receivers, commands)."""
    run_sync(agrant_topic, window, topic, presence=presence)


def revoke_topic(window: WindowInfo | str, topic: Any) -> None:
    """Synchronous twin of :func:`arevoke_topic`."""
    run_sync(arevoke_topic, window, topic)


def on_topic_message(hub: Any, message: dict[str, Any]) -> None:
    """Hub handler of ``fc.topic``: apply a grant or revoke to the local sockets of the window."""
    if message["action"] not in ("grant", "revoke"):
        raise messages.InvalidMessage(messages.TOPIC.name, f"unknown action {message['action'][:40]!r}")
    for socket in list(hub.groups.get(message["group"], ())):
        if getattr(socket, "window", None) is not None and hasattr(socket, "topic_lock"):
            spawn(_apply(socket, message), "apply a topic grant", socket._task_set())


async def _apply(consumer: Any, message: dict[str, Any]) -> None:
    canonical, action = message["topic"], message["action"]

    def frame(state: dict[str, Any]) -> dict[str, Any]:
        return {"type": "topic", "action": "joined" if action == "grant" else "left", **state}

    async with consumer.topic_lock():
        if consumer.closed:
            return
        try:
            if action == "grant":
                await enter(consumer, canonical, message.get("presence", False), frame)
            else:
                await exit_topic(consumer, canonical, frame)
        except Refused as refusal:
            metrics.increment("grant_refused")
            logger.warning("Window %s was not granted a topic: %s", consumer.window_id, refusal.message)
