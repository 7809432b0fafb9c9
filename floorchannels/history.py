"""Per-group message history: sequence numbers, epochs and replay after a reconnect.

Each message published to a group is appended to that group's bounded history first and
gets the group's next sequence number. A reconnecting window says what it saw last; the
history answers with what came after, or says it cannot (trimmed, expired, or the epoch
changed because the history itself was lost), which becomes a ``resync`` for the client.

Two stores: Redis (streams, for the Redis channel layers; shared by all processes) and
memory (for the in-memory layer, where there is only one process anyway).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import metrics
from .conf import fc_settings
from .redis_clients import layer_redis_url, redis_client
from .tasks import spawn

logger = logging.getLogger("floorchannels.history")

#: Reasons a history cannot replay a gap.
EPOCH, TRIMMED = "epoch", "history"


@dataclass(frozen=True)
class Entry:
    seq: int
    message_id: str
    frame: str  # the signal frame without its position fields


def alias(group: str) -> str:
    """The opaque name clients use for a group: they never learn group names."""
    return hashlib.sha256(group.encode()).hexdigest()[:12]


def with_position(
    frame: str, group_alias: str, seq: int, epoch: str, others: dict[str, int] | None = None
) -> str:
    """Add ``g``, ``seq`` and ``e`` to an encoded frame without encoding it again; and
    ``o``, the message's positions in ``others`` (aliases to seqs), when there are any."""
    extra = ""
    if others:
        extra = ',"o":{' + ",".join(f'"{a}":"{s}-0"' for a, s in others.items()) + "}"
    return f'{frame[:-1]},"g":"{group_alias}","seq":"{seq}-0","e":"{epoch}"{extra}}}'


def parse_seq(value: Any) -> int | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    head, _, _tail = value.partition("-")
    return int(head) if head.isdigit() else None


class MemoryHistory:
    """History kept in this process; its epoch changes with every process start.

    Bounded three ways, each loss turned into a ``resync`` rather than a silent gap:

    - a group's entries are dropped once it has been idle for ``HISTORY_TTL`` (they have
      all expired by then anyway), its counter is kept, so a window that saw its last
      message resumes with nothing to replay and any other window gets ``resync history``;
    - entries of all groups together hold at most ``HISTORY_MAX_BYTES`` of frames: past it,
      the least recently appended group loses its entries early (WARNING, metric
      ``history_evicted``);
    - at most ``HISTORY_MAX_GROUPS`` counters: past it, the least recently appended group
      is forgotten altogether. ``floor`` then remembers the greatest position a forgotten
      group had reached: a group this history does not know stands there (``positions``
      says so, and its next message is ``floor + 1``), so a window's position in it is
      either exactly ``floor`` (it missed nothing) or below (``resync history``). Positions
      never run backwards, so a forgotten group's old numbers cannot be mistaken for new.
    """

    def __init__(self) -> None:
        self.epoch = secrets.token_hex(8)
        #: Last seq of each group, least recently appended first.
        self.counters: OrderedDict[str, int] = OrderedDict()
        #: Recent entries of each group, least recently appended first.
        self.entries: OrderedDict[str, deque[tuple[int, float, str, str]]] = OrderedDict()
        #: Characters of frames held in ``entries``.
        self.size = 0
        #: No group forgotten from ``counters`` ever passed this position.
        self.floor = 0

    async def append(self, group: str, message_id: str, frame: str) -> tuple[str, int]:
        now = time.time()
        self._expire(now)
        seq = self.counters.get(group, self.floor) + 1
        self.counters[group] = seq
        self.counters.move_to_end(group)
        entries = self.entries.get(group)
        if entries is None:
            entries = self.entries[group] = deque()
        else:
            self.entries.move_to_end(group)
        while entries and len(entries) >= max(fc_settings.HISTORY_SIZE, 1):
            self.size -= len(entries.popleft()[3])
        entries.append((seq, now, message_id, frame))
        self.size += len(frame)
        self._bound()
        return self.epoch, seq

    async def positions(self, groups: Sequence[str]) -> tuple[str, dict[str, int]]:
        floor = self.floor
        return self.epoch, {group: self.counters.get(group, floor) for group in groups}

    async def since(self, group: str, epoch: str, seq: int) -> list[Entry] | str:
        if epoch != self.epoch:
            return EPOCH
        self._expire(time.time())
        return _select(self.counters.get(group, self.floor), seq, list(self.entries.get(group, ())))

    def _expire(self, now: float) -> None:
        """Drop the entries of groups idle past HISTORY_TTL (oldest first, so it stops early)."""
        oldest_allowed = now - fc_settings.HISTORY_TTL
        entries = self.entries
        while entries:
            group, rows = next(iter(entries.items()))
            if rows and rows[-1][1] >= oldest_allowed:
                break
            del entries[group]
            self.size -= sum(len(row[3]) for row in rows)

    def _bound(self) -> None:
        max_bytes, max_groups = fc_settings.HISTORY_MAX_BYTES, fc_settings.HISTORY_MAX_GROUPS
        while self.size > max_bytes and len(self.entries) > 1:
            group, rows = self.entries.popitem(last=False)
            self.size -= sum(len(row[3]) for row in rows)
            _evicted(group, len(rows), "HISTORY_MAX_BYTES")
        while len(self.counters) > max(max_groups, 1):
            group, last = self.counters.popitem(last=False)
            self.floor = max(self.floor, last)
            rows = self.entries.pop(group, None)
            if rows:
                self.size -= sum(len(row[3]) for row in rows)
                _evicted(group, len(rows), "HISTORY_MAX_GROUPS")


def _evicted(group: str, count: int, setting: str) -> None:
    """Unexpired entries were dropped to stay within a bound: windows resuming there resync."""
    metrics.increment("history_evicted")
    logger.warning(
        "In-memory history over %s: dropped %d unexpired message(s) of group %s; windows "
        "resuming there get a resync.",
        setting,
        count,
        alias(group),
    )


def _select(counter: int | None, seq: int, rows: list[tuple[int, float, str, str]]) -> list[Entry] | str:
    """The entries after ``seq`` if the history still holds all of them.

    ``counter`` is the group's last seq; None (no counter: nothing was ever appended, or it
    expired) stands at 0, which is what ``positions`` reports for it.
    """
    counter = counter or 0
    if counter < seq:
        return EPOCH  # this history never reached that far: it is not the one the client saw
    if counter == seq:
        return []
    oldest_allowed = time.time() - fc_settings.HISTORY_TTL
    wanted = [row for row in rows if row[0] > seq]
    if not wanted or wanted[0][0] != seq + 1 or wanted[0][1] < oldest_allowed:
        return TRIMMED
    if wanted[-1][0] != counter:
        # The read stops short of the latest message (a window further behind than one
        # read returns, inside what the stream's approximate trimming kept): a replay of
        # part of the gap would look complete to the client.
        return TRIMMED
    return [Entry(s, message_id, frame) for s, _ts, message_id, frame in wanted]


_APPEND = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then redis.call('SET', KEYS[1], ARGV[1]); epoch = ARGV[1] end
local seq = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], seq .. '-0', 't', ARGV[5], 'i', ARGV[6], 'f', ARGV[7])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return {epoch, seq}
"""


_POSITIONS = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then redis.call('SET', KEYS[1], ARGV[1]); epoch = ARGV[1] end
local result = {epoch}
for i = 2, #KEYS do result[i] = redis.call('GET', KEYS[i]) or '0' end
return result
"""


_SHAS = {script: hashlib.sha1(script.encode()).hexdigest() for script in (_APPEND, _POSITIONS)}


async def _run(client: Any, script: str, keys: int, *args: Any) -> Any:
    """Run a Lua script by its digest (``EVALSHA``), sending its text only when Redis does
    not have it yet: the text costs Redis a digest and a lookup on every call."""
    from redis.exceptions import NoScriptError  # the redis extra: only Redis histories get here

    try:
        return await client.evalsha(_SHAS[script], keys, *args)
    except NoScriptError:
        return await client.eval(script, keys, *args)  # which also caches it for next time


class RedisHistory:
    """History in Redis: a counter and a capped stream per group, and one epoch key.

    The epoch key is created on first use; when Redis loses its data (a restart without
    persistence) the next append creates a new epoch, which tells clients their sequence
    numbers no longer mean anything.
    """

    prefix = "floorchannels:"

    def __init__(self, url: str) -> None:
        self.url = url
        #: Position reads waiting for the next script call, per event loop.
        self._reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _PositionReads] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> Any:
        return redis_client(self.url)

    def _keys(self, group: str) -> tuple[str, str, str]:
        return f"{self.prefix}epoch", f"{self.prefix}seq:{group}", f"{self.prefix}history:{group}"

    async def append(self, group: str, message_id: str, frame: str) -> tuple[str, int]:
        ttl = int(fc_settings.HISTORY_TTL)
        epoch, seq = await _run(
            self._client(),
            _APPEND,
            3,
            *self._keys(group),
            secrets.token_hex(8),
            fc_settings.HISTORY_SIZE,
            max(ttl, 1),
            max(ttl * 24, 86400),
            f"{time.time():.3f}",
            message_id,
            frame,
        )
        return epoch.decode() if isinstance(epoch, bytes) else str(epoch), int(seq)

    async def positions(self, groups: Sequence[str]) -> tuple[str, dict[str, int]]:
        """The epoch and each group's last sequence number (0: nothing published yet).

        Every connecting window asks this. Reads that arrive while one script call is in
        flight share the next one: in a reconnect storm that is one Redis round trip for
        many windows instead of one each (a third of the server's connect-time CPU went to
        the Redis client before, measured with py-spy).
        """
        loop = asyncio.get_running_loop()
        reads = self._reads.get(loop)
        if reads is None:
            reads = self._reads[loop] = _PositionReads(self)
        return await reads.read(groups)

    async def _read_positions(self, groups: list[str]) -> tuple[str, dict[str, int]]:
        keys = [f"{self.prefix}epoch", *(self._keys(group)[1] for group in groups)]
        epoch, *counters = await _run(self._client(), _POSITIONS, len(keys), *keys, secrets.token_hex(8))
        epoch = epoch.decode() if isinstance(epoch, bytes) else str(epoch)
        return epoch, {group: int(counter) for group, counter in zip(groups, counters, strict=True)}

    async def since(self, group: str, epoch: str, seq: int) -> list[Entry] | str:
        epoch_key, counter_key, stream_key = self._keys(group)
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.get(epoch_key)
            pipe.get(counter_key)
            pipe.xrange(stream_key, min=f"{seq + 1}-0", max="+", count=fc_settings.HISTORY_SIZE + 1)
            current, counter, rows = await pipe.execute()
        if current is None or current.decode() != epoch:
            return EPOCH
        parsed = [
            (int(row_id.split(b"-")[0]), float(fields[b"t"]), fields[b"i"].decode(), fields[b"f"].decode())
            for row_id, fields in rows
        ]
        return _select(int(counter) if counter is not None else None, seq, parsed)


#: Most windows whose positions one script call reads.
_MAX_BATCH = 256


class _PositionReads:
    """Coalesces concurrent position reads of one event loop into batched script calls."""

    def __init__(self, history: RedisHistory) -> None:
        self.history = history
        self.waiting: list[tuple[Sequence[str], asyncio.Future[tuple[str, dict[str, int]]]]] = []
        self.running: asyncio.Future[Any] | None = None

    async def read(self, groups: Sequence[str]) -> tuple[str, dict[str, int]]:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((groups, future))
        if self.running is None:
            self.running = spawn(self._run(), "history position reads")
        return await future

    async def _run(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:_MAX_BATCH], self.waiting[_MAX_BATCH:]
                wanted = list(dict.fromkeys(group for groups, _ in batch for group in groups))
                try:
                    epoch, positions = await self.history._read_positions(wanted)
                except Exception as exc:
                    _fail(batch, exc)
                    continue
                except BaseException:  # cancelled: nobody may be left waiting forever
                    _fail(batch + self.waiting, asyncio.CancelledError())
                    self.waiting = []
                    raise
                for groups, future in batch:
                    if not future.done():
                        future.set_result((epoch, {group: positions[group] for group in groups}))
        finally:
            self.running = None


def _fail(batch: list[tuple[Any, asyncio.Future[Any]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


_stores: dict[str, Any] = {}


def get_history() -> MemoryHistory | RedisHistory | None:
    """The history store for the configured channel layer, or None when history is off."""
    if not fc_settings.HISTORY:
        return None
    alias_ = fc_settings.CHANNEL_LAYER
    store = _stores.get(alias_)
    if store is None:
        url = fc_settings.HISTORY_REDIS_URL or layer_redis_url(alias_)
        store = _stores[alias_] = RedisHistory(url) if url else MemoryHistory()
    return store


def reset() -> None:
    """Forget the stores (tests change settings)."""
    _stores.clear()
