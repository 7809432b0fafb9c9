"""Presence: who is in a topic right now, across processes, with join/leave diffs.

A window is present in the topics its view listed in ``presence=`` (``window_key`` or the
template tag), and in those it joined or was granted with presence (floorchannels.joins).
Each entry names the window, its user and the user's display name, and
carries an expiry: the process holding the window renews its entries every
``PRESENCE_HEARTBEAT`` seconds, so the entries of a crashed process expire within one
interval and are announced as left by whichever process notices first.

Joins and leaves are pushed to the topic as the browser signal ``fc.presence.diff``
``{topic, joined: [...], left: [...]}``. Browsers ask for the list with the server signal
``fc.presence.list {topic}`` (only for topics their window was granted).

What this process keeps is bounded by what is open: the windows present in each topic
(a topic is forgotten with its last local window), one pending diff per topic (flushed
early once it lists ``MAX_DIFF_ENTRIES`` entries) and one renewer per event loop (the
entries of a closed loop are dropped at the next join).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from .conf import fc_settings
from .dispatch import acall
from .permissions import Permission
from .redis_clients import layer_redis_url, redis_client
from .registry import signal
from .syncloop import run_sync
from .tasks import spawn, supervise
from .topics import CanonicalTopic, serialize_topic, topic_group

logger = logging.getLogger("floorchannels.presence")

DIFF = "fc.presence.diff"

#: Entries (joins plus leaves) one pending diff may list before it is sent at once.
MAX_DIFF_ENTRIES = 500


def _member(window_id: str, user_pk: str | None, name: str) -> str:
    return json.dumps([window_id, user_pk, name], separators=(",", ":"))


def _describe(member: str) -> dict[str, Any]:
    window_id, user_pk, name = json.loads(member)
    return {"window": window_id, "user": user_pk, "name": name}


class MemoryPresence:
    """For the in-memory layer: one process, so one dict."""

    def __init__(self) -> None:
        self.topics: dict[str, dict[str, float]] = {}

    async def add(self, topic: str, members: list[str], until: float) -> None:
        entries = self.topics.setdefault(topic, {})
        for member in members:
            entries[member] = until

    async def remove(self, topic: str, member: str) -> bool:
        entries = self.topics.get(topic, {})
        removed = entries.pop(member, None) is not None
        if not entries:
            self.topics.pop(topic, None)  # a topic nobody is in takes no memory
        return removed

    async def expire(self, topic: str, now: float) -> list[str]:
        entries = self.topics.get(topic, {})
        gone = [m for m, until in entries.items() if until < now]
        for member in gone:
            del entries[member]
        if not entries:
            self.topics.pop(topic, None)
        return gone

    async def members(self, topic: str, now: float) -> list[str]:
        return [m for m, until in self.topics.get(topic, {}).items() if until >= now]

    async def count(self, topic: str, now: float) -> int:
        return len(await self.members(topic, now))


_EXPIRE = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) end
return gone
"""


class RedisPresence:
    """A sorted set per topic: member → expiry time. Shared by every process."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _client(self) -> Any:
        # The same client (and so the same bounded pool) as the history's: members are
        # decoded here rather than by a second, decoding client.
        return redis_client(self.url)

    @staticmethod
    def _key(topic: str) -> str:
        return f"floorchannels:presence:{topic_group(topic)}"

    async def add(self, topic: str, members: list[str], until: float) -> None:
        key = self._key(topic)
        async with self._client().pipeline(transaction=False) as pipe:
            pipe.zadd(key, dict.fromkeys(members, until))
            pipe.expire(key, int(fc_settings.PRESENCE_HEARTBEAT * 4) + 60)
            await pipe.execute()

    async def remove(self, topic: str, member: str) -> bool:
        return bool(await self._client().zrem(self._key(topic), member))

    async def expire(self, topic: str, now: float) -> list[str]:
        return _decoded(await self._client().eval(_EXPIRE, 1, self._key(topic), now))

    async def members(self, topic: str, now: float) -> list[str]:
        return _decoded(await self._client().zrangebyscore(self._key(topic), now, "+inf"))

    async def count(self, topic: str, now: float) -> int:
        return int(await self._client().zcount(self._key(topic), now, "+inf"))


def _decoded(members: Any) -> list[str]:
    return [m.decode() if isinstance(m, bytes) else str(m) for m in members]


_store: Any = None


def store() -> MemoryPresence | RedisPresence:
    global _store
    if _store is None:
        url = layer_redis_url(fc_settings.CHANNEL_LAYER)
        _store = RedisPresence(url) if url else MemoryPresence()
    return _store


def reset() -> None:
    global _store
    _store = None


# Windows of this process ------------------------------------------------------------------

#: Per event loop: the local windows present in each topic (a topic leaves with its last).
_local: dict[asyncio.AbstractEventLoop, dict[str, set[Any]]] = {}
#: Per event loop and topic: the joins and leaves of its next diff.
_pending: dict[asyncio.AbstractEventLoop, dict[str, tuple[list[str], list[str]]]] = {}
#: Per event loop: the supervised task renewing its entries.
_renewers: dict[asyncio.AbstractEventLoop, asyncio.Future[Any]] = {}
#: Diff flushes and renewers in flight (spawn() drops each as it ends).
_tasks: set[asyncio.Future[Any]] = set()


def _member_of(consumer: Any) -> str:
    user = consumer.window.user
    name = user.get_username() if user.is_authenticated else ""
    return _member(consumer.window_id, consumer.window.user_pk, name)


def _forget_closed_loops() -> None:
    """Drop what closed event loops left (tests and ``async_to_sync`` make many loops)."""
    for per_loop in (_local, _pending, _renewers):
        for loop in [loop for loop in per_loop if loop.is_closed()]:
            del per_loop[loop]
    for task in [task for task in _tasks if task.get_loop().is_closed()]:
        _tasks.discard(task)  # never to finish: its loop is gone


async def join(consumer: Any, topics: Iterable[str] | None = None) -> None:
    """Announce a window in ``topics`` (canonical): by default all its presence topics, as
    when it is welcomed; a topic it joins later is announced alone."""
    loop = asyncio.get_running_loop()
    if loop not in _renewers:
        _forget_closed_loops()
        _renewers[loop] = supervise(lambda: _renew(loop), "presence renewer", holder=_tasks)
    local = _local.setdefault(loop, {})
    member = _member_of(consumer)
    until = time.time() + fc_settings.PRESENCE_HEARTBEAT * 2
    for topic in consumer.window.presence if topics is None else topics:
        local.setdefault(topic, set()).add(consumer)
        await store().add(topic, [member], until)
        _announce(loop, topic, joined=[member])


async def leave(consumer: Any, topics: Iterable[str] | None = None) -> None:
    """Take a window out of ``topics`` (by default all its presence topics: it closed) and
    tell each topic."""
    loop = asyncio.get_running_loop()
    local = _local.get(loop, {})
    topics = tuple(consumer.window.presence if topics is None else topics)
    # Out of every local set first: a Redis error below must not keep the window here.
    for topic in topics:
        consumers = local.get(topic)
        if consumers is not None:
            consumers.discard(consumer)
            if not consumers:
                del local[topic]
    member = _member_of(consumer)
    for topic in topics:
        try:
            if await store().remove(topic, member):
                _announce(loop, topic, left=[member])
        except Exception:
            # The entry is no longer renewed: it expires within two heartbeats and is
            # announced as left by whichever process notices.
            logger.warning("Could not remove window %s from presence in %s.", consumer.window_id, topic,
                           exc_info=True)  # fmt: skip


def _announce(
    loop: asyncio.AbstractEventLoop, topic: str, joined: list[str] = (), left: list[str] = ()
) -> None:
    """Queue a join/leave for the topic's next diff.

    Diffs are batched per process and topic for ``PRESENCE_DIFF_DELAY`` seconds: when a
    thousand windows connect at once (a deploy, a reconnect storm), each window gets a few
    diffs listing many entries rather than a thousand diffs of one. A batch that reaches
    ``MAX_DIFF_ENTRIES`` goes out at once, so no batch grows without bound.
    """
    pending = _pending.setdefault(loop, {})
    batch = pending.get(topic)
    if batch is None:
        batch = pending[topic] = ([], [])
        loop.call_later(fc_settings.PRESENCE_DIFF_DELAY, _start_flush, loop, topic, batch)
    batch[0].extend(joined)
    batch[1].extend(left)
    if len(batch[0]) + len(batch[1]) >= MAX_DIFF_ENTRIES:
        _start_flush(loop, topic, batch)


def _start_flush(loop: asyncio.AbstractEventLoop, topic: str, batch: tuple[list[str], list[str]]) -> None:
    pending = _pending.get(loop, {})
    if pending.get(topic) is not batch:
        return  # already sent (it was full)
    del pending[topic]
    if not pending:
        _pending.pop(loop, None)
    spawn(_flush(topic, batch), "presence diff", holder=_tasks)


async def _flush(topic: str, batch: tuple[list[str], list[str]]) -> None:
    joined, left = batch
    # A window that came and went within the batch is announced as neither.
    both = set(joined) & set(left)
    kwargs = {
        "topic": topic,
        "joined": [_describe(m) for m in joined if m not in both],
        "left": [_describe(m) for m in left if m not in both],
    }
    try:
        if kwargs["joined"] or kwargs["left"]:
            await acall(DIFF, topic_target(topic), kwargs=kwargs)
    except Exception:
        logger.exception("Announcing presence in %s failed.", topic)


async def _renew(loop: asyncio.AbstractEventLoop) -> None:
    """Renew this process's entries and announce the ones that expired (crashed processes)."""
    while True:
        await asyncio.sleep(fc_settings.PRESENCE_HEARTBEAT)
        now = time.time()
        for topic in list(_local.get(loop, {})):
            await _renew_topic(loop, topic, now)


async def _renew_topic(loop: asyncio.AbstractEventLoop, topic: str, now: float) -> None:
    # A function of its own so that nothing of it outlives the renewal: a list of windows
    # left in the renewer's frame kept closed windows alive until the next heartbeat.
    try:
        live = [_member_of(c) for c in _local.get(loop, {}).get(topic, ()) if c.window is not None]
        if live:
            await store().add(topic, live, now + fc_settings.PRESENCE_HEARTBEAT * 2)
        gone = await store().expire(topic, now)
        if gone:
            _announce(loop, topic, left=gone)
    except Exception:
        logger.exception("Renewing presence in %s failed.", topic)


def topic_target(canonical: str) -> CanonicalTopic:
    """A call() target for a topic in the canonical form windows carry."""
    return CanonicalTopic(canonical)


# Python API --------------------------------------------------------------------------------


async def alist(topic: Any) -> list[dict[str, Any]]:
    """Who is in ``topic``: one entry per user (anonymous windows each on their own), with
    the ids of their windows there (several tabs or devices)."""
    members = await store().members(serialize_topic(topic), time.time())
    users: dict[Any, dict[str, Any]] = {}
    for member in members:
        entry = _describe(member)
        key = entry["user"] if entry["user"] is not None else ("anonymous", entry["window"])
        user = users.setdefault(key, {"user": entry["user"], "name": entry["name"], "windows": []})
        user["windows"].append(entry["window"])
    return sorted(users.values(), key=lambda u: (u["name"], str(u["user"])))


async def acount(topic: Any) -> int:
    """How many windows are in ``topic`` (one Redis call, for large topics)."""
    return await store().count(serialize_topic(topic), time.time())


def presence_list(topic: Any) -> list[dict[str, Any]]:
    """Synchronous twin of :func:`alist` (on the process's shared loop, see syncloop)."""
    return run_sync(alist, topic)


def presence_count(topic: Any) -> int:
    """Synchronous twin of :func:`acount`."""
    return run_sync(acount, topic)


class _GrantedTopic(Permission):
    """The window was granted the topic it asks about."""

    def has_permission(self, window: Any, kwargs: dict[str, Any]) -> bool:
        topic = kwargs.get("topic")
        return isinstance(topic, str) and topic in window.topics


@signal("fc.presence.list", is_allowed_to=_GrantedTopic())
async def _list_for_browser(window: Any, topic: str, count_only: bool = False) -> dict[str, Any]:
    """The browser side: ``topic`` is the canonical form the diffs carry (for a string
    topic, its JSON, e.g. ``'"chat"'``)."""
    target = CanonicalTopic(topic)
    if count_only:
        return {"topic": topic, "count": await acount(target)}
    users = await alist(target)
    return {"topic": topic, "count": sum(len(u["windows"]) for u in users), "users": users}
