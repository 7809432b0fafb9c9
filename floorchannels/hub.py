"""The hub: one seat per process (per event loop) in the channel layer, shared by all sockets.

Raw Channels gives every socket its own layer channel, so a group message to 1,000 sockets is
1,000 layer messages, 1,000 task wake-ups and 1,000 JSON encodings. Here the process joins
each group once, with a single channel; a group message arrives once per process, carrying
its frame already encoded, and is written to the local sockets of that group. The same
message sent to several groups (``[WINDOW, USER, BROADCAST]``) carries one id and is written
to each socket once.

Memberships are reference-counted locally: the first local socket in a group adds the hub's
channel to it, and a periodic sweep removes groups left empty (a reconnecting tab finds its
group still there). The same sweep re-adds every membership before the layer's
``group_expiry`` would silently drop it.

The hub must outlive every fault: each layer message is checked against
:mod:`floorchannels.messages` before use, an error in handling one message is logged and the
reader goes on, its background loops run supervised (:mod:`floorchannels.tasks`), a failed
layer call rolls its bookkeeping back and starts the outage path (probe, then ``resync``), and
a hub whose start failed is replaced by the next connect.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Collection, Iterable
from typing import Any, Protocol

from channels.layers import InMemoryChannelLayer

from . import layers, messages, metrics, protocol
from .conf import fc_settings
from .dispatch import queue_channel
from .layers import channel_layer
from .outgoing import Outgoing
from .registry import registry
from .tasks import spawn, supervise
from .topics import BROADCAST_GROUP, layer_group
from .worker import run_queued

logger = logging.getLogger("floorchannels.hub")

#: How many multi-group message ids each hub remembers for de-duplication.
RECENT_IDS = 4096
#: Most group names remembered across those ids (a message may name many topics).
RECENT_GROUPS = 65536

#: Frames written between two yields to the event loop. A layer with messages queued hands
#: them over without suspending, and servers only put written frames on the wire when the
#: loop runs: without a yield a burst of 200 messages to 1,000 sockets held the loop for
#: seconds (nothing sent, no pings, no connects). Yielding after every frame costs a loop
#: turn per socket; after a few thousand frames a burst is sent in a few frames per syscall.
YIELD_EVERY = 2000

#: Most messages written in one socket-by-socket batch.
BATCH_MAX = 50
#: Seconds the hub waits for a burst's next message when each layer receive is a Redis
#: round trip (the core layer); a lone message is delayed by at most this much.
REMOTE_BATCH_WAIT = 0.002

DELIVER, RUN, PROBE = messages.DELIVER.name, messages.RUN.name, messages.PROBE.name

#: Other message types a hub understands, by type: ``handler(hub, message)``.
message_handlers: dict[str, Any] = {}


def register_handler(message_type: messages.MessageType, handler: Any) -> None:
    """Have every hub pass messages of ``message_type`` to ``handler(hub, message)``.

    Called from ``AppConfig.ready()`` (revocation, live resources). A handler must return
    at once: slow work (database checks) is queued by the handler itself.
    """
    message_handlers[message_type.name] = handler


class Socket(Protocol):
    """What the hub needs from a connected window."""

    window_id: str
    #: The hub's join count when the socket last joined a group (see Hub._targets).
    joined_at: int

    def send_frame(self, text: str) -> None:
        """Write or queue a frame; never waits for the client."""

    def deliver(self, items: list[Outgoing]) -> None:
        """Write or queue frames, in order; never waits for the client. ``items`` may be
        handed to every member of a group: read it, never change it."""

    def refresh_key(self, now: float) -> None: ...


class Hub:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel_name = ""
        #: Local sockets by group (floorchannels' own groups: windows, users, topics...).
        #: A group of one socket (a window's own, most users') holds a tuple rather than
        #: a set, a quarter of its memory; it becomes a set when a second socket joins.
        self.groups: dict[str, set[Socket] | tuple[Socket, ...]] = {}
        #: The layer groups this hub is in, each with the groups it carries here (a window
        #: group travels on a shared layer group: see topics.layer_group).
        self.carriers: dict[str, set[str]] = {}
        self._pending: dict[str, asyncio.Future[Any]] = {}
        #: Multi-group message id -> (groups already delivered here, join count then).
        self._recent: OrderedDict[str, tuple[list[str], int]] = OrderedDict()
        self._recent_groups = 0
        #: Counts joins: a socket that joined after a message's first copy was delivered
        #: has not received it, whatever groups it is in now.
        self._joins = 0
        self._tasks: set[asyncio.Future[Any]] = set()
        self._unflushed = 0
        #: A layer receive started ahead of need (see _receive_ready).
        self._ahead: asyncio.Future[dict[str, Any]] | None = None
        self._receives_locally = _receives_locally(layer)
        self._recovering = False
        self._failed_at = 0.0
        self._logged_errors: set[str] = set()
        self._probes: dict[str, asyncio.Future[bool]] = {}
        #: A group only this hub is in, for probing the layer end to end.
        self.probe_group = f"fc.h.{uuid.uuid4().hex}"
        self.started: asyncio.Future[None] = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        self.channel_name = await self.layer.new_channel(prefix="floorchannels-hub")
        await self.layer.group_add(self.probe_group, self.channel_name)
        layers.on_failure(self.layer_failed)
        supervise(self._read, "hub reader", self._tasks)
        supervise(self._maintain, "hub group maintenance", self._tasks)
        supervise(self._refresh_keys, "hub key refresh", self._tasks)
        if _queues_in_process(self.layer):
            self._serve_queues()

    def _serve_queues(self) -> None:
        """Run this process's share of the queues (RUN_QUEUES_IN_PROCESS): on a Redis layer
        as one more worker of each durable queue, else from the in-memory layer's channels.
        Queues TASK_QUEUES routes to Django's task framework have that backend's workers."""
        from . import queues
        from .task_queues import route_for

        for queue in sorted(registry.queues()):
            if route_for(queue) is not None:
                continue
            if queues.durable():
                supervise(queues.QueueWorker(queue).run, f"queue worker {queue}", self._tasks)
            else:
                supervise(lambda queue=queue: self._serve_queue(queue), f"queue {queue}", self._tasks)

    def _spawn(self, coroutine: Any, name: str) -> None:
        # The hub holds its tasks: not garbage-collected mid-flight, cancelled with the hub.
        spawn(coroutine, name, self._tasks)

    def stop(self) -> None:
        """Cancel the hub's background work (a hub that failed to start, or tests)."""
        for task in list(self._tasks):
            task.cancel()

    # Membership -------------------------------------------------------------------------

    async def join(self, socket: Socket, groups: Iterable[str]) -> None:
        """Put ``socket`` in ``groups``; returns once the layer delivers them to this process.

        If the layer refuses a membership, the socket is taken out of ``groups`` again,
        carriers whose add failed are forgotten (the next join adds them again, rather
        than trusting a membership the layer never made), the hub starts probing the
        layer, and the error is raised.
        """
        groups = list(groups)
        self._joins += 1
        socket.joined_at = self._joins
        added: list[str] = []  # carriers this join asked the layer for
        waits = []
        for group in groups:
            members = self.groups.get(group)
            carrier = layer_group(group)
            if members is None:
                self.groups[group] = (socket,)
                carried = self.carriers.get(carrier)
                if carried is None:
                    carried = self.carriers[carrier] = set()
                    added.append(carrier)
                    waits.append(self._change(carrier, self.layer.group_add))
                elif carrier in self._pending:
                    waits.append(asyncio.shield(self._pending[carrier]))
                carried.add(group)
                continue
            if carrier in self._pending:
                waits.append(asyncio.shield(self._pending[carrier]))
            if type(members) is tuple:
                self.groups[group] = {*members, socket} if members else (socket,)
            else:
                members.add(socket)
        if not waits:
            return
        results = await asyncio.gather(*waits, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            self._roll_back(socket, groups, added)
            self.layer_failed()
            raise errors[0]

    def _roll_back(self, socket: Socket, groups: list[str], carriers: list[str]) -> None:
        """Undo a join the layer refused (see join)."""
        self.leave(socket, groups)
        for carrier in carriers:
            for group in self.carriers.pop(carrier, ()):
                # Everything on a carrier that was never joined came with joins that fail
                # too; their sockets close. Forget those groups so none looks joined.
                members = self.groups.pop(group, None)
                if members:
                    logger.debug("Dropped %d socket(s) of %s with its failed join.", len(members), group)

    def leave(self, socket: Socket, groups: Iterable[str]) -> None:
        """Take ``socket`` out of ``groups``; the sweep releases groups left empty."""
        for group in groups:
            members = self.groups.get(group)
            if type(members) is tuple:
                if socket in members:
                    self.groups[group] = tuple(member for member in members if member is not socket)
            elif members is not None:
                members.discard(socket)

    async def _change(self, group: str, operation: Any) -> None:
        # One layer operation per group at a time, in order: an add issued while a discard
        # is in flight waits for it, so Redis never sees them reversed.
        previous = self._pending.get(group)

        async def run() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            await operation(group, self.channel_name)

        future = asyncio.ensure_future(run())
        self._pending[group] = future

        def forget(done: asyncio.Future[Any]) -> None:
            if self._pending.get(group) is done:
                del self._pending[group]

        future.add_done_callback(forget)
        await asyncio.shield(future)

    async def _maintain(self) -> None:
        last_refresh = time.monotonic()
        while True:
            await asyncio.sleep(fc_settings.GROUP_SWEEP_INTERVAL)
            try:
                await self.sweep()
                if time.monotonic() - last_refresh >= fc_settings.GROUP_REFRESH_INTERVAL:
                    last_refresh = time.monotonic()
                    await self.refresh()
            except Exception:
                logger.warning("Group maintenance failed; probing the channel layer.", exc_info=True)
                self.layer_failed()

    async def _refresh_keys(self) -> None:
        """Let every window send itself a fresh key when its key is due for one.

        One periodic check per process instead of a timer per socket. It runs often
        enough that a key is refreshed well before it expires, even a short-lived one.
        """
        while True:
            lifetime = fc_settings.WINDOW_KEY_MAX_AGE * (1 - fc_settings.WINDOW_KEY_REFRESH_AFTER)
            await asyncio.sleep(max(0.05, min(fc_settings.GROUP_SWEEP_INTERVAL, lifetime / 4)))
            self._refresh_due_keys(time.time())

    def _refresh_due_keys(self, now: float) -> None:
        # A method of its own: a loop variable in _refresh_keys would keep the last window
        # (maybe closed since) alive for as long as the loop sleeps.
        for socket in list(self.groups.get(BROADCAST_GROUP, ())):
            try:
                socket.refresh_key(now)
            except Exception:
                logger.exception("Could not refresh the key of window %s.", socket.window_id)

    async def sweep(self) -> None:
        """Discard the layer memberships no local socket uses any more."""
        released = []
        for group in [g for g, members in self.groups.items() if not members]:
            carrier = layer_group(group)
            if carrier in self._pending:
                continue
            del self.groups[group]
            carried = self.carriers.get(carrier)
            if carried is not None:
                carried.discard(group)
                if not carried:
                    del self.carriers[carrier]
                    released.append(carrier)
        await asyncio.gather(*(self._change(g, self.layer.group_discard) for g in released))

    def layer_failed(self) -> None:
        """The layer reported an error: check it until it works again, then tell the sockets.

        Whatever was published meanwhile may not have reached this process (a Redis
        restart also loses group memberships), so once a probe message makes the round
        trip again every local socket gets a ``resync`` frame: loss is never silent.
        """
        if not self._recovering:
            self._recovering = True
            self._failed_at = time.time()
            metrics.increment("layer_failures")
            logger.warning("The channel layer failed; probing it until it carries messages again.")
            self._spawn(self._recover(), "hub layer recovery")

    async def _recover(self) -> None:
        delay, attempts = 0.1, 0
        try:
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                attempts += 1
                try:
                    await self.refresh()
                    if await self._probe():
                        break
                except Exception as exc:
                    # One line per 30 attempts (a minute at most): a long outage must not
                    # flood the log, and must not be silent either.
                    if attempts % 30 == 1:
                        logger.warning("The channel layer is still unreachable: %s", exc)
        finally:
            self._recovering = False
        logger.warning(
            "Channel layer reachable again after %.1f s; telling sockets to resync.",
            time.time() - self._failed_at,
        )
        frame = protocol.encode(
            {"type": "resync", "reason": "layer_outage", "since": self._failed_at, "at": time.time()}
        )
        for socket in list(self.groups.get(BROADCAST_GROUP, ())):
            socket.send_frame(frame)

    async def _probe(self, timeout: float = 1.0) -> bool:
        """Send a message to this hub through the layer; True when it comes back in time."""
        token = uuid.uuid4().hex
        arrived = self._probes[token] = asyncio.get_running_loop().create_future()
        try:
            await self.layer.group_send(self.probe_group, {"type": PROBE, "token": token})
            await asyncio.wait_for(arrived, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._probes.pop(token, None)

    async def refresh(self) -> None:
        """Re-add every membership, restarting the layer's group_expiry clock."""
        await self.layer.group_add(self.probe_group, self.channel_name)
        for carrier in list(self.carriers):
            await self.layer.group_add(carrier, self.channel_name)

    # Delivery ---------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            await self._read_forever()
        finally:
            if self._ahead is not None:
                self._ahead.cancel()

    async def _read_forever(self) -> None:
        while True:
            try:
                message = await self._receive()
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.increment("layer_receive_errors")
                logger.exception("Receiving from the channel layer failed; retrying.")
                self.layer_failed()
                await asyncio.sleep(0.25)
                continue
            if not self._deliverable_now(message):
                self._handle(message)
                continue
            # Messages already waiting are written socket by socket, so a server that
            # flushes per socket (daphne) sends each socket several frames at once.
            batch = [message]
            while len(batch) < BATCH_MAX and (extra := await self._receive_ready()) is not None:
                if not self._deliverable_now(extra):
                    await self._deliver_batch(batch)
                    batch = []
                    self._handle(extra)
                    break
                batch.append(extra)
            if batch:
                await self._deliver_batch(batch)

    async def _deliver_batch(self, batch: list[dict[str, Any]]) -> None:
        try:
            await self.deliver_many(batch)
        except Exception:
            # A fault in one batch must not stop the reader: every later message would be
            # lost while sockets stay open and answer pings.
            self._error("delivering a batch of messages")

    def _handle(self, message: Any) -> None:
        try:
            self._dispatch(message)
        except messages.InvalidMessage as invalid:
            messages.skip(invalid, "the hub channel")
        except Exception:
            self._error(f"handling a {str(message.get('type'))[:80]} message")

    def _error(self, what: str) -> None:
        """Count and log an unexpected error; the traceback once per kind, then counted."""
        metrics.increment("hub_errors")
        if what not in self._logged_errors and len(self._logged_errors) < 64:
            self._logged_errors.add(what)
            logger.exception("Error while %s; the hub goes on (metric hub_errors).", what)
        else:
            logger.debug("Error while %s.", what, exc_info=True)

    async def _receive(self) -> dict[str, Any]:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            return await ahead
        return await self.layer.receive(self.channel_name)

    async def _receive_ready(self) -> dict[str, Any] | None:
        """The next message if the layer has it at hand, else None.

        The receive is started and given one loop turn (layers that receive into a local
        queue: in-memory, Redis pub/sub) or ``REMOTE_BATCH_WAIT`` (the Redis core layer,
        where each receive is a round trip); if it is still waiting, it is kept, never
        cancelled, and the next ``_receive`` picks it up: no message can be lost.
        """
        # Held on the hub at once, so a cancelled hub cancels it too (see _read).
        ahead = self._ahead = asyncio.ensure_future(self.layer.receive(self.channel_name))
        if self._receives_locally:
            await asyncio.sleep(0)
        else:
            await asyncio.wait({ahead}, timeout=REMOTE_BATCH_WAIT)
        if ahead.done() and not ahead.cancelled() and ahead.exception() is None:
            self._ahead = None
            return ahead.result()
        return None

    def _deliverable_now(self, message: Any) -> bool:
        """A well-formed group message due now (anything else goes through _handle)."""
        if not isinstance(message, dict) or message.get("type") != DELIVER:
            return False
        try:
            messages.check(message)
        except messages.InvalidMessage:
            return False  # _handle counts and logs it
        eta = message.get("eta")
        return eta is None or eta <= time.time()

    def _dispatch(self, message: Any) -> None:
        """Everything but a group message due now: probes, handlers, delayed messages.

        Raises InvalidMessage for a message this release cannot use."""
        kind = messages.check(message).name
        if kind == PROBE:
            arrived = self._probes.get(message.get("token"))
            if arrived is not None and not arrived.done():
                arrived.set_result(True)
        elif kind == DELIVER:
            delay = message["eta"] - time.time()
            asyncio.get_running_loop().call_later(delay, self._deliver_later, message)
        elif (handler := message_handlers.get(kind)) is not None:
            # Must return at once: slow work (e.g. DB checks) is queued by the handler.
            handler(self, message)
        else:
            raise messages.InvalidMessage(kind, "no handler in this process")

    def _deliver_later(self, message: dict[str, Any]) -> None:
        self._spawn(self.deliver(message), "delayed delivery")

    async def deliver(self, message: dict[str, Any]) -> None:
        """Write one group message's frame to each local member, once per socket."""
        await self.deliver_many([message])

    async def deliver_many(self, messages: list[dict[str, Any]]) -> None:
        """Write group messages to their local members: once per socket, in order per
        socket, and all of one socket's frames one after the other."""
        if not messages:
            return
        group = messages[0].get("group", "")
        if all(message.get("group", "") == group and not message.get("multi") for message in messages):
            # One group's messages (each message alone when they come one at a time, or a
            # burst to one group): every member gets the same frames, so they are written
            # as the members are walked. Sorting frames by socket first took a pass over
            # every member before the first one was written (docs/design.md).
            items = [Outgoing(message["frame"]) for message in messages if not self._expired(message)]
            members = self.groups.get(group) if items else None
            # A copy: the walk yields to the loop, where sockets join and leave.
            await self._write_all((socket, items) for socket in list(members or ()))
            return
        frames: dict[Socket, list[Outgoing]] = {}
        for message in messages:
            item = Outgoing(message["frame"])
            for socket in self._targets(message):
                queued = frames.get(socket)
                if queued is None:
                    frames[socket] = [item]
                else:
                    queued.append(item)
        await self._write_all(frames.items())

    async def _write_all(self, writes: Iterable[tuple[Socket, list[Outgoing]]]) -> None:
        """Hand each socket its frames (a list the sockets only read, maybe shared),
        letting the loop run every ``YIELD_EVERY`` frames."""
        sent = 0
        for socket, items in writes:
            socket.deliver(items)  # never waits: see SignalConsumer.push
            sent += len(items)
            self._unflushed += len(items)
            if self._unflushed >= YIELD_EVERY:
                self._unflushed = 0
                await asyncio.sleep(0)
        metrics.increment("frames_sent", sent)

    def _expired(self, message: dict[str, Any]) -> bool:
        expires = message.get("expires")
        if expires is not None and time.time() > expires:
            metrics.increment("expired")
            logger.warning("Dropped expired message %s for %s.", message.get("id"), message.get("group"))
            return True
        return False

    def _targets(self, message: dict[str, Any]) -> list[Socket]:
        if self._expired(message):
            return []
        members = self.groups.get(message.get("group", ""))
        if not members:
            return []
        if not message.get("multi"):
            return list(members)
        return self._first_copies(message["id"], message["group"], members)

    def _first_copies(self, message_id: str, group: str, members: Collection[Socket]) -> list[Socket]:
        """Members that have not had this multi-group message through another group.

        A message sent to several groups arrives once per group. Rather than the sockets
        it reached (thousands of entries per message), the hub remembers the groups it
        was delivered to and the join count then: a socket was reached before if it was
        in one of those groups and has not joined anything since.
        """
        record = self._recent.get(message_id)
        if record is None:
            self._recent[message_id] = ([group], self._joins)
            self._recent_groups += 1
            while len(self._recent) > RECENT_IDS or self._recent_groups > RECENT_GROUPS:
                _, (old_groups, _) = self._recent.popitem(last=False)
                self._recent_groups -= len(old_groups)
            return list(members)
        delivered, joins_then = record
        earlier = [self.groups.get(g, ()) for g in delivered]
        targets = [
            s for s in members if s.joined_at > joins_then or not any(s in before for before in earlier)
        ]
        delivered.append(group)
        self._recent_groups += 1
        return targets

    # Queues run in this process ---------------------------------------------------------

    async def _serve_queue(self, queue: str) -> None:
        channel = queue_channel(queue)
        while True:
            message = await self.layer.receive(channel)
            if messages.accept(message, messages.RUN, f"queue {queue}"):
                self._spawn(run_queued(message), f"queued signal {message['signal']}")


def _receives_locally(layer: Any) -> bool:
    """Whether the layer hands over received messages from a local queue."""
    if isinstance(layer, InMemoryChannelLayer):
        return True
    try:
        from channels_redis.pubsub import RedisPubSubChannelLayer
    except ImportError:
        return False
    return isinstance(layer, RedisPubSubChannelLayer)


def _queues_in_process(layer: Any) -> bool:
    setting = fc_settings.RUN_QUEUES_IN_PROCESS
    if setting is None:
        return isinstance(layer, InMemoryChannelLayer)
    return bool(setting)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


async def get_hub() -> Hub:
    """The hub of the running event loop, started on first use.

    A start that fails (Redis not up yet) raises to the sockets waiting for it, which
    close with 4500 and retry; the failed hub is dropped, so the next connect starts a
    new one and the first start that succeeds serves everyone from then on.
    """
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub(channel_layer())
        hub.started.add_done_callback(lambda started, hub=hub: _forget_failed(loop, hub))
        _tune_gc()
    await asyncio.shield(hub.started)
    return hub


def _forget_failed(loop: asyncio.AbstractEventLoop, hub: Hub) -> None:
    if hub.started.cancelled() or hub.started.exception() is not None:
        metrics.increment("hub_start_failures")
        logger.warning(
            "Could not start the hub (is the channel layer reachable?); the next connect tries again.",
            exc_info=None if hub.started.cancelled() else hub.started.exception(),
        )
        hub.stop()
        if _hubs.get(loop) is hub:
            del _hubs[loop]


_tuned = False
#: Generation-0 threshold while many sockets are served (Python's default is 700).
GC_THRESHOLD0 = 10_000


def _tune_gc() -> None:
    """Keep the garbage collector's full collections out of the way of fan-outs.

    A full (generation-2) collection scans every container object in the process and
    holds the event loop while it does: with Django loaded and 1,000 sockets open under
    daphne it took 70-150 ms, every few seconds during a fan-out, because each fan-out
    leaves the server's per-write objects alive across several young collections, which
    promotes them and soon triggers a full one. Measured (docs/benchmarks.md): with the
    start-up objects frozen and a generation-0 threshold of 10,000 no full collection ran
    during the whole benchmark, and the paced p99 fell from 150-230 ms to about 80 ms.
    Done once per process, at the first connection, when the project is fully loaded.
    """
    global _tuned
    if _tuned or not fc_settings.GC_TUNING:
        return
    _tuned = True
    gc.freeze()
    threshold0, *older = gc.get_threshold()
    if threshold0 == 700:  # Python's default: the project did not tune it itself
        gc.set_threshold(GC_THRESHOLD0, *older)
