"""The websocket consumer: one instance per browser window.

It is a plain ASGI application rather than a Channels ``AsyncConsumer``: it needs no layer
channel of its own (the process's :class:`~floorchannels.hub.Hub` receives group messages
for every socket), which saves a layer round trip, a task and a JSON encoding per socket per
message. It follows docs/protocol.md: hello → welcome, then calls, pings and signals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from types import MappingProxyType
from typing import Any

from channels.db import DatabaseSyncToAsync
from channels.sessions import InstanceSessionWrapper

from . import joins, metrics, outgoing, permissions, presence, protocol, sending, shutdown
from .arguments import InvalidArguments
from .conf import fc_settings
from .deadlines import hello_deadlines
from .dispatch import PublishError, enqueue
from .history import alias, get_history, parse_seq, with_position
from .hub import Hub, get_hub
from .limits import TokenBucket
from .origins import origin_allowed
from .outgoing import Outgoing
from .protocol import CloseCode, ProtocolError, close_reason
from .registry import registry
from .revocation import announce_window, session_hash
from .servers import close_with_reason, flow_control
from .tasks import spawn
from .windows import WindowInfo, WindowKeyError, check_user, load_key, session_of, sign

logger = logging.getLogger("floorchannels.consumer")

_MAX_ID_LENGTH = 128
#: Requests that may wait for their turn, per request allowed to run at once.
_WAITING_PER_RUNNING = 4
#: How long after a replay live copies of replayed messages are watched for.
_REPLAY_DEDUP_SECONDS = 10.0
#: How long after a welcome live copies older than its positions are watched for.
_SEAM_SECONDS = 30.0
#: Frames answered by a reply carrying their id.
_REQUESTS = ("call", "subscribe", "unsubscribe", *joins.FRAMES)
_NO_SUBSCRIPTIONS: Any = MappingProxyType({})


def _valid_id(value: Any) -> bool:
    return (isinstance(value, str) and len(value) <= _MAX_ID_LENGTH) or (
        isinstance(value, int) and not isinstance(value, bool)
    )


#: The missing-DRF warning is logged once per process.
_warned_no_drf = False


class SignalConsumer:
    """Serves one window's websocket. Route it with ``SignalConsumer.as_asgi()``.

    One instance per open socket, so it is kept small (``__slots__``, no per-socket timer,
    lazily created task sets): an idle socket's memory is what a server can hold.
    """

    __slots__ = (
        "scope", "_send", "_frame_send", "_closed", "hub", "window", "window_id", "_groups",
        "credential", "subscriptions", "_held", "_held_bytes", "_replayed", "_tasks", "_calls",
        "_requests", "_outbox", "_outbox_bytes", "_flow", "joined_at", "opened_at", "_expiry",
        "_topic_lock", "protocol", "_epoch", "_floors",
    )  # fmt: skip

    def __init__(self) -> None:
        self._closed = False
        self._frame_send: Any = None
        self.hub: Hub | None = None
        self.window: WindowInfo | None = None
        self.window_id = ""
        self.joined_at = 0
        self._groups: tuple[str, ...] = ()
        #: Digest of what signed the window in (its session key, or the token its key was
        #: issued for), so a logout or a deleted token closes its windows.
        self.credential: str | None = None
        #: When the hello was read (Unix seconds): of two sockets of one window, the one
        #: opened last stays (see revocation.announce_window).
        self.opened_at = 0.0
        #: Closes the window when the token its key was issued for expires (JWT, knox).
        self._expiry: asyncio.TimerHandle | None = None
        #: Live resource subscriptions by id; a window that never subscribes shares this
        #: empty, read-only mapping instead of holding a dict of its own.
        self.subscriptions: Any = _NO_SUBSCRIPTIONS
        #: Live frames held back until the welcome and any replay are written (None: not held).
        self._held: list[str] | None = None
        self._held_bytes = 0
        #: Ids just replayed, and until when a live copy of them is dropped.
        self._replayed: tuple[set[str], float] | None = None
        #: Where each group stood at the welcome ({alias: seq}, epoch, until when): a live
        #: copy at or below it was published before the welcome and is dropped (see _above).
        self._floors: tuple[dict[str, int], Any, float] | None = None
        #: Running requests and sends of this window, created on first use (most windows of
        #: a large fan-out never call anything: they should not pay for a set and a semaphore).
        self._tasks: set[asyncio.Future[Any]] | None = None
        self._calls: asyncio.Semaphore | None = None
        #: Requests running or waiting for their turn.
        self._requests = 0
        #: Frames waiting to be written while the client is not reading (None: none waits).
        self._outbox: deque[str] | None = None
        self._outbox_bytes = 0
        #: The server's flow control where its send never waits (see floorchannels.servers).
        self._flow: Any = None
        #: One change of the window's topics at a time (joins, leaves, grants), created on
        #: first use.
        self._topic_lock: asyncio.Lock | None = None
        #: The protocol version the client said hello with (docs/protocol.md).
        self.protocol = 1
        #: The history epoch the client is in, as far as the frames sent to it say: a
        #: version 2 signal carries its epoch only when it differs (see outgoing.Outgoing).
        self._epoch: str | None = None

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> Any:
        # A plain function returning the instance's coroutine: an ``async def`` wrapper
        # would keep one more coroutine frame alive per open socket.
        def app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
            return cls(**initkwargs)(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app._asgi_single_callable = True  # type: ignore[attr-defined]
        return app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self._send = send
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if not origin_allowed(scope):
            metrics.increment("refused_origin")
            logger.warning("Refused a websocket from a foreign origin (client %s).", _client(scope))
            await _refuse_handshake(scope, send, "origin not allowed")
            return
        await send({"type": "websocket.accept"})
        metrics.increment("connections")
        self._flow = flow_control(send)
        try:
            if not await self._hello(receive):
                return
            # The frame loop is here rather than in a method of its own: one coroutine
            # frame fewer per open socket.
            bucket = TokenBucket(fc_settings.RATE_LIMIT, fc_settings.RATE_LIMIT_BURST)
            while (message := await receive())["type"] != "websocket.disconnect":
                if message["type"] == "websocket.receive" and not await self._receive(message, bucket):
                    return
        finally:
            self._closed = True
            self._leave()
            metrics.increment("disconnections")

    # Hello -------------------------------------------------------------------------------

    async def _hello(self, receive: Any) -> bool:
        """hello -> key check -> groups -> welcome (-> replay): False when refused."""
        frame = await self._read_hello(receive)
        if frame is None:
            return False
        window = await self._authenticate(frame)
        if window is None:
            return False
        history = get_history()
        resume = frame.get("resume") if history is not None else None
        # Topics the client had joined, presented with a key that does not list them: in
        # before the groups are joined, so the resume covers them (see floorchannels.joins).
        rejoined = "topics" in frame and await joins.restore(self, frame["topics"])
        if rejoined:
            self._groups = tuple(window.groups)
        # From the moment the window is in its groups, live messages can arrive: they wait
        # until the welcome (and the replay, if any) is written, so welcome is always first.
        self._held = []
        if not await self._join():
            return False
        welcome = await self._welcome(window, history)
        floors = {a: n for a, seq in (welcome.get("seqs") or {}).items() if (n := parse_seq(seq))}
        if floors:
            self._floors = (floors, welcome.get("e"), time.monotonic() + _SEAM_SECONDS)
        self.push(protocol.encode(welcome))
        if rejoined:  # a key that lists them, for the next reconnect
            self.push(
                protocol.encode(
                    {"type": "refresh", "window_key": sign(window), "key_expires": window.expires}
                )
            )
        if resume:
            await self._replay(history, resume, welcome.get("e"), welcome.get("seqs") or {})
        else:
            self._release_held()
        if window.presence:
            try:
                await presence.join(self)
            except Exception:
                logger.exception("Presence join failed (window %s).", self.window_id)
        # Any older socket of this window, in any process, is closed: the newest one wins.
        announce_window(self)
        return True

    async def _read_hello(self, receive: Any) -> dict[str, Any] | None:
        """The hello frame, or None after closing the socket with the reason's code."""
        deadlines = hello_deadlines()
        task = asyncio.current_task()
        assert task is not None
        deadlines.add(task, fc_settings.HELLO_TIMEOUT)
        try:
            message = await receive()
        except asyncio.CancelledError:
            # The deadline's own cancellation becomes the 4408 close; any other goes on.
            if not deadlines.expired(task) or task.uncancel():
                raise
            metrics.increment("refused_hello_timeout")
            await self.close(CloseCode.HELLO_TIMEOUT)
            return None
        finally:
            deadlines.discard(task)
        if message["type"] != "websocket.receive":
            return None
        if len(message.get("text") or "") > fc_settings.MAX_FRAME_SIZE:
            metrics.increment("refused_too_large")
            await self.close(CloseCode.TOO_LARGE)
            return None
        try:
            frame = protocol.decode(message.get("text") or "")
            version = frame.get("protocol", 1)
            if frame["type"] != "hello" or type(version) is not int or version not in protocol.VERSIONS:
                raise ProtocolError("The first frame must be a hello for protocol 1 or 2.")
        except ProtocolError:
            metrics.increment("refused_bad_hello")
            await self.close(CloseCode.BAD_HELLO)
            return None
        self.protocol = version
        return frame

    async def _authenticate(self, frame: dict[str, Any]) -> WindowInfo | None:
        """The window the hello's key describes, its user checked against the socket."""
        try:
            window = load_key(frame.get("window_key"))
            if window.user_pk is not None:
                window._user = await DatabaseSyncToAsync(check_user, thread_sensitive=False)(
                    window, self.scope
                )
            else:
                window._user = check_user(window, self.scope)
        except WindowKeyError as refusal:
            metrics.increment(f"refused_{refusal.reason}")
            # Never log the key itself: it is a bearer credential until it expires.
            logger.info("Refused a window (client %s): %s", _client(self.scope), refusal)
            await self.close(refusal.close_code, str(refusal))
            return None
        self.window = window
        self.window_id = window.window_id or ""
        self.opened_at = time.time()
        if window.credential.digest:
            self.credential = window.credential.digest
        elif window.user_pk is not None:
            self.credential = session_hash(getattr(session_of(self.scope), "session_key", None))
        if window.credential.expires is not None:
            # A socket lives no longer than the token that opened it: at its expiry the client
            # is closed with 4410 and fetches a key with a fresh token.
            self._expiry = asyncio.get_running_loop().call_later(
                max(0.0, window.credential.expires - time.time()), self._token_expired
            )
        self._groups = tuple(window.groups)  # a tuple of strings is not tracked by the GC
        return window

    def _token_expired(self) -> None:
        self._expiry = None
        if not self._closed:
            metrics.increment("closed_token_expired")
            logger.info("Closing window %s: the token it was opened with has expired.", self.window_id)
            spawn(
                self.close(CloseCode.EXPIRED_KEY, "the token this window key was issued for has expired"),
                "close a window whose token expired",
            )

    async def _join(self) -> bool:
        """Join the window's groups through the process's hub; False (closed 4500) when the
        channel layer cannot be reached: the window could not receive anything."""
        try:
            self.hub = await get_hub()
            shutdown.install(self.hub)
            if shutdown.stopping(self.hub):
                # SIGTERM closed the open sockets with 4503; one arriving in the grace period is
                # not welcomed into a dying process either. 4500, not 4503: its client retries
                # on its backoff (elsewhere, or here once restarted) instead of at once, again
                # and again, while this process is still finishing.
                metrics.increment("refused_going_away")
                self._held = None
                await self.close(CloseCode.UNAVAILABLE, "server shutting down")
                return False
            await self.hub.join(self, self._groups)
        except Exception:
            # The client retries on its backoff schedule; the hub probes the layer meanwhile.
            metrics.increment("refused_unavailable")
            logger.warning(
                "Could not join the groups of window %s; closing with 4500.", self.window_id, exc_info=True
            )
            self._held = None
            await self.close(CloseCode.UNAVAILABLE)
            return False
        return True

    async def _welcome(self, window: WindowInfo, history: Any) -> dict[str, Any]:
        welcome = {
            "type": "welcome",
            "window_id": window.window_id,
            "protocol": self.protocol,
            "heartbeat": fc_settings.HEARTBEAT,
            "key_expires": window.expires,
        }
        if window.topics:
            # What each topic's signals carry as ``g``: the client can tell where a message
            # came from, and which runtime topics it is in (see floorchannels.joins).
            welcome["topics"] = [joins.describe(topic, window) for topic in window.topics]
        if history is not None:
            # Where each group's history stands now (read after joining, so nothing can
            # fall between): the client resumes from here if it has seen nothing newer.
            try:
                epoch, positions = await history.positions(self._groups)
                welcome["e"] = self._epoch = epoch
                welcome["seqs"] = {alias(group): f"{seq}-0" for group, seq in positions.items()}
            except Exception:
                logger.exception("Could not read the history positions (window %s).", self.window_id)
        return welcome

    async def _replay(self, history: Any, resume: Any, epoch_now: Any, positions: dict[str, str]) -> None:
        """Send what this window missed in each of its groups, then what arrived meanwhile."""
        replayed: set[str] = set()
        try:
            if not isinstance(resume, dict) or not isinstance(resume.get("seqs"), dict):
                raise ProtocolError("resume needs {'e': epoch, 'seqs': {alias: seq}}.")
            epoch = str(resume.get("e"))[:64]
            # Only this window's current groups: never replay what it may no longer see.
            mine = {alias(group): group for group in self._groups}
            wanted = [(a, resume["seqs"][a]) for a in mine if a in resume["seqs"]]
            for group_alias, seq_text in wanted:
                group, seq = mine[group_alias], parse_seq(seq_text)
                if seq is None:
                    continue
                entries = await history.since(group, epoch, seq)
                if isinstance(entries, str):
                    metrics.increment(f"resync_{entries}")
                    resync = {"type": "resync", "reason": entries, "g": group_alias}
                    if group_alias in positions:  # where to resume from next time
                        resync.update(seq=positions[group_alias], e=epoch_now)
                    self.push(protocol.encode(resync))
                    continue
                for entry in entries:
                    replayed.add(entry.message_id)
                self._write([Outgoing(with_position(e.frame, group_alias, e.seq, epoch)) for e in entries])
                metrics.increment("replayed", len(entries))
        except ProtocolError as exc:
            self.push(protocol.encode(protocol.error(exc.code, exc.message)))
        except Exception:
            logger.exception(
                "Replay failed (window %s).", self.window_id, extra={"window_id": self.window_id}
            )
            self.push(protocol.encode({"type": "resync", "reason": "history"}))
        finally:
            if replayed:
                self._replayed = (replayed, time.monotonic() + _REPLAY_DEDUP_SECONDS)
            self._release_held()

    def _release_held(self) -> None:
        """Write the live frames held back during the hello, in the order they came."""
        held, self._held = self._held, None
        self._held_bytes = 0
        if held:
            self.deliver(held)

    def _leave(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        for task in list(self._tasks or ()):
            task.cancel()
        self._outbox = None
        if self.window is not None and self.window.presence:
            spawn(presence.leave(self), "presence leave")
        if self.hub is not None:
            self.hub.leave(self, self._groups)
            for subscription in self.subscriptions.values():
                self.hub.leave(self, subscription.groups)

    # Frames ------------------------------------------------------------------------------

    async def _receive(self, message: dict[str, Any], bucket: TokenBucket) -> bool:
        """Handle one frame from the browser; False when the socket was closed for it."""
        text = message.get("text")
        max_size = fc_settings.MAX_FRAME_SIZE
        if len(text if text is not None else message.get("bytes") or b"") > max_size:
            metrics.increment("refused_too_large")
            logger.warning("Closed window %s: a frame over %d characters.", self.window_id, max_size)
            await self.close(CloseCode.TOO_LARGE)
            return False
        if not bucket.take():
            metrics.increment("rate_limited")
            if bucket.refused_in_a_row >= fc_settings.RATE_LIMIT_CLOSE_AFTER:
                logger.warning(
                    "Closed window %s: it kept flooding.",
                    self.window_id,
                    extra={"window_id": self.window_id},
                )
                await self.close(CloseCode.RATE_LIMITED)
                return False
            self._refuse_flood(text)
            return True
        if text is None:
            self.send_json(protocol.error(protocol.INVALID_FRAME, "Binary frames are not supported."))
            return True
        self.receive_frame(text)
        return True

    def _refuse_flood(self, text: str | None) -> None:
        """Answer a frame over the rate limit: a reply if it was a request, else an error."""
        message = "Too many frames; slow down."
        try:
            frame = protocol.decode(text or "")
        except ProtocolError:
            frame = {}
        if frame.get("type") in _REQUESTS and _valid_id(frame.get("id")):
            self.send_json(protocol.reply_error(frame["id"], protocol.RATE_LIMITED, message))
        else:
            self.send_json(protocol.error(protocol.RATE_LIMITED, message))

    def receive_frame(self, text: str) -> None:
        try:
            frame = protocol.decode(text)
        except ProtocolError as exc:
            self.send_json(protocol.error(exc.code, exc.message))
            return
        kind = frame["type"]
        if kind in _REQUESTS:
            self._start_request(frame)
        elif kind == "ping":
            pong = {"type": "pong"}
            if _valid_id(frame.get("id")):
                pong["id"] = frame["id"]
            self.send_json(pong)
        elif kind == "hello":
            self.send_json(protocol.error(protocol.INVALID_FRAME, "This window already said hello."))
        else:
            self.send_json(protocol.error(protocol.INVALID_FRAME, f"Unknown frame type {kind[:64]!r}."))

    # Requests ----------------------------------------------------------------------------

    def _start_request(self, frame: dict[str, Any]) -> None:
        """Frames that get a reply run as tasks, so a slow one does not hold up pings."""
        if not _valid_id(frame.get("id")):
            self.send_json(
                protocol.error(
                    protocol.INVALID_FRAME, f"A {frame['type']} needs an 'id' (string or integer)."
                )
            )
            return
        if self._requests >= fc_settings.MAX_CONCURRENT_CALLS * _WAITING_PER_RUNNING:
            # Running and waiting requests are bounded: each holds a task and its frame.
            metrics.increment("requests_refused")
            self.send_json(
                protocol.reply_error(frame["id"], protocol.RATE_LIMITED, "Too many requests in flight.")
            )
            return
        self._requests += 1
        spawn(self._answer(frame), "answer a request", self._task_set())

    async def _answer(self, frame: dict[str, Any]) -> None:
        if frame["type"] in joins.FRAMES:
            # Writes its own reply: a join's must come before the topic's first signal.
            try:
                await joins.answer(self, frame)
            finally:
                self._requests -= 1
            return
        if self._calls is None:
            self._calls = asyncio.Semaphore(fc_settings.MAX_CONCURRENT_CALLS)
        try:
            # The time a request waits for its turn counts against CALL_TIMEOUT too: the
            # browser's own timeout does not know about our queue.
            async with asyncio.timeout(fc_settings.CALL_TIMEOUT), self._calls:
                reply = await self.answer(frame)
        except TimeoutError:
            logger.error(
                "A %s timed out (window %s, signal %s).",
                frame["type"],
                self.window_id,
                str(frame.get("signal"))[:200],
                extra={"window_id": self.window_id},
            )
            reply = protocol.reply_error(frame["id"], protocol.TIMEOUT, "The request took too long.")
        finally:
            self._requests -= 1
        metrics.increment(f"{frame['type']}_{'ok' if reply['ok'] else reply['error']['code']}")
        try:
            text = protocol.encode(reply)
            if _size(text) > fc_settings.MAX_MESSAGE_SIZE:
                # The server would refuse to write it (daphne: over 1 MiB): say so instead.
                raise ValueError(f"a reply of {_size(text)} bytes is over MAX_MESSAGE_SIZE")
        except (TypeError, ValueError):
            logger.exception(
                "A %s returned a value that is not JSON (window %s).", frame["type"], self.window_id
            )
            text = protocol.encode(
                protocol.reply_error(frame["id"], protocol.SERVER_ERROR, "The result could not be sent.")
            )
        self.send_frame(text)

    def _no_live_resources(self, kind: str, call_id: Any) -> dict[str, Any]:
        """Without DRF there are no live resources: a documented answer, logged once."""
        global _warned_no_drf
        if not _warned_no_drf:
            _warned_no_drf = True
            logger.warning("A window asked for a live resource, but djangorestframework is not installed.")
        if kind == "unsubscribe":
            return protocol.reply_ok(call_id, None)
        return protocol.reply_error(
            call_id,
            protocol.UNKNOWN_RESOURCE,
            'This server has no live resources (pip install "floorchannels[drf]").',
        )

    async def answer(self, frame: dict[str, Any]) -> dict[str, Any]:
        """The reply to a call, subscribe or unsubscribe frame."""
        kind, call_id = frame["type"], frame["id"]
        if kind == "call":
            name, kwargs = frame.get("signal"), frame.get("kwargs", {})
            if not isinstance(name, str) or not isinstance(kwargs, dict):
                return protocol.reply_error(
                    call_id, protocol.INVALID_FRAME, "A call needs a string 'signal' and an object 'kwargs'."
                )
            return await self.run_call(call_id, name, kwargs)
        try:
            from .rest import subscriptions  # DRF is imported only by windows that use it
        except ImportError:
            return self._no_live_resources(kind, call_id)
        try:
            if kind == "subscribe":
                return await subscriptions.subscribe(self, frame)
            return await subscriptions.unsubscribe(self, frame)
        except Exception:
            logger.exception(
                "A %s failed (window %s).", kind, self.window_id, extra={"window_id": self.window_id}
            )
            return protocol.reply_error(
                call_id, protocol.SERVER_ERROR, "The subscription failed on the server."
            )

    async def run_call(self, call_id: Any, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Check and run one browser call; always return a reply frame."""
        handlers = registry.get(name)
        if not handlers:
            return protocol.reply_error(
                call_id, protocol.UNKNOWN_SIGNAL, f"No signal is named {name[:200]!r}."
            )
        allowed = await self._allowed(call_id, name, handlers, kwargs)
        if isinstance(allowed, dict):
            return allowed  # the refusal
        try:
            results, queued = await self._run_handlers(call_id, name, allowed, kwargs)
        except PublishError as exc:
            # The queue is full or Redis is down: already counted; one line, not a traceback.
            logger.warning("Signal %s could not be queued (window %s): %s", name, self.window_id, exc)
            return protocol.reply_error(call_id, protocol.SERVER_ERROR, "The signal could not be queued.")
        except Exception:
            logger.exception(
                "Signal %s failed (window %s).", name, self.window_id, extra={"window_id": self.window_id}
            )
            return protocol.reply_error(call_id, protocol.SERVER_ERROR, "The signal failed on the server.")
        result = results[0] if len(handlers) == 1 else results
        return protocol.reply_ok(call_id, result, queued=queued)

    async def _allowed(
        self, call_id: Any, name: str, handlers: list[Any], kwargs: dict[str, Any]
    ) -> list[Any] | dict[str, Any]:
        """The handlers this window may call with these arguments, or the refusal to send."""
        try:
            allowed = [h for h in handlers if await permissions.check(h.is_allowed_to, self.window, kwargs)]
            if not allowed:
                return protocol.reply_error(
                    call_id, protocol.FORBIDDEN, "This window may not call this signal."
                )
            for handler in allowed:
                handler.arguments.validate(kwargs)
        except InvalidArguments as exc:
            return protocol.reply_error(call_id, protocol.INVALID_ARGUMENTS, str(exc))
        except Exception:
            logger.exception(
                "Permission check of %s failed (window %s).",
                name,
                self.window_id,
                extra={"window_id": self.window_id},
            )
            return protocol.reply_error(call_id, protocol.SERVER_ERROR, "The signal failed on the server.")
        return allowed

    async def _run_handlers(
        self, call_id: Any, name: str, handlers: list[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], bool]:
        """Run or queue each handler; (results, whether any was queued)."""
        results, queued = [], False
        for handler in handlers:
            if handler.queue:
                await enqueue(handler.queue, name, self.window, kwargs, f"{self.window_id}:{call_id}")
                results.append(None)
                queued = True
            else:
                results.append(await handler.arun(self.window, kwargs))
        return results, queued

    # Key refresh -------------------------------------------------------------------------

    def refresh_key(self, now: float) -> None:
        """Send a fresh key once the current one is past ``WINDOW_KEY_REFRESH_AFTER`` of its
        lifetime. The hub calls this periodically for every window (one timer per process
        rather than one per socket).

        A key never outlives the token it was issued for: once a refresh could not push the
        key's expiry past the token's, none is sent (the socket closes at the token's expiry).
        """
        window = self.window
        max_age = fc_settings.WINDOW_KEY_MAX_AGE
        if (
            window is None
            or self._closed
            or now < window.issued_at + max_age * fc_settings.WINDOW_KEY_REFRESH_AFTER
        ):
            return
        token_expires = window.credential.expires
        if token_expires is not None and token_expires <= window.expires:
            return
        key = sign(window)
        self.send_json({"type": "refresh", "window_key": key, "key_expires": window.expires})

    # Topics joined while open (floorchannels.joins) ------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def topic_lock(self) -> asyncio.Lock:
        """Held while the window's topics change: one join, leave or grant at a time."""
        if self._topic_lock is None:
            self._topic_lock = asyncio.Lock()
        return self._topic_lock

    def hold(self) -> None:
        """Hold live frames back (as during the hello) until :meth:`release_held`."""
        if self._held is None:
            self._held = []
            self._held_bytes = 0

    def release_held(self) -> None:
        self._release_held()

    def floor_at(self, group: str, epoch: Any, seq: int) -> None:
        """The client was just told that ``group`` stands at ``seq`` (a topic joined at
        runtime): live copies at or below it that a hub behind still hands out are
        dropped, as after the welcome (see _above_floors)."""
        until = time.monotonic() + _SEAM_SECONDS
        floors = self._floors
        if floors is None or floors[1] != epoch:
            self._floors = ({alias(group): seq}, epoch, until)
        else:
            floors[0][alias(group)] = seq
            self._floors = (floors[0], epoch, until)

    def add_group(self, group: str) -> None:
        if group not in self._groups:
            self._groups = (*self._groups, group)

    def remove_group(self, group: str) -> None:
        self._groups = tuple(g for g in self._groups if g != group)

    def _task_set(self) -> set[asyncio.Future[Any]]:
        """This window's running tasks (cancelled when it closes), created on first use."""
        if self._tasks is None:
            self._tasks = set()
        return self._tasks

    # Sending -----------------------------------------------------------------------------

    def deliver(self, items: list[Outgoing]) -> None:
        """Write frames in order (the hub: this window's frames of one batch), or hold them
        while the window is welcomed and replayed."""
        held = self._held
        if held is not None:
            held.extend(items)
            self._held_bytes += sum(_size(item.text) for item in items)
            if self._held_bytes > fc_settings.MAX_BUFFERED_BYTES:
                self._overflow("while its hello was answered")
            return
        if self._replayed is not None:
            # A message already in the history when the replay read it may still be on its
            # way through the layer: drop that live copy for a few seconds after a replay.
            ids, until = self._replayed
            if time.monotonic() > until:
                self._replayed = None
            else:
                items = [item for item in items if item.message_id not in ids]
        if self._floors is not None:
            items = self._above_floors(items)
        self._write(items)

    def _above_floors(self, items: list[Outgoing]) -> list[Outgoing]:
        """``items`` without the signals published before the welcome's positions.

        The window joins its groups, then reads where they stand. A hub that is behind
        (a busy process, a burst in the layer) still has older messages of those groups to
        hand out, and would write them to this window after the welcome and any replay:
        old messages, out of order, that the window either has had replayed or was opened
        after. A group's floor is forgotten once a newer message of it arrives.
        """
        floors, epoch, until = self._floors  # type: ignore[misc]
        if time.monotonic() > until:
            self._floors = None
            return items
        kept = []
        for item in items:
            position = item.position
            if position is not None and position[2] == epoch and position[0] in floors:
                if position[1] <= floors[position[0]]:
                    continue
                del floors[position[0]]
                if not floors:
                    self._floors = None
            kept.append(item)
        return kept

    def _write(self, items: list[Outgoing]) -> None:
        """Push frames in the client's protocol: under version 2 a signal in its compact
        form, and several frames as one websocket message (see floorchannels.outgoing)."""
        if self.protocol == 1:
            for item in items:
                self.push(item.text)
            return
        epoch = self._epoch
        texts = []
        for item in items:
            text, epoch = item.compact(epoch)
            texts.append(text)
        self._epoch = epoch
        for text in outgoing.join(texts) if len(texts) > 1 else texts:
            self.push(text)

    def send_frame(self, text: str) -> None:
        """Write a frame, or hold it while the window is welcomed and replayed."""
        self.deliver([Outgoing(text)])

    def send_json(self, frame: dict[str, Any]) -> None:
        self.send_frame(protocol.encode(frame))

    def push(self, text: str) -> None:
        """Write a frame now, without ever waiting for the client to read it.

        Normally the server takes the frame at once. When its send has to wait (the
        client is not reading), the frame and those after it wait in this window's
        outbox, written by a task of the window's own, so the caller (the hub's fan-out)
        moves on; past ``MAX_BUFFERED_BYTES`` the window is closed (see _overflow).
        """
        if self._closed:
            return
        outbox = self._outbox
        if outbox is not None:
            outbox.append(text)
            self._outbox_bytes += _size(text)
            if self._outbox_bytes > fc_settings.MAX_BUFFERED_BYTES:
                self._overflow("it is not reading")
            return
        flow = self._flow
        try:
            if flow is not None and flow.send_text(text):
                rest = None
            else:
                rest = sending.start(self._frame_sender()({"type": "websocket.send", "text": text}))
        except Exception as exc:
            _send_failed(self.window_id, exc)
            return
        if rest is not None or (flow is not None and flow.paused):
            self._outbox = deque()
            self._outbox_bytes = 0
            spawn(self._drain(rest), "write to a window", self._task_set())

    async def _drain(self, rest: sending.Rest | None) -> None:
        """Finish a send that had to wait, then write the outbox, oldest first."""
        send, flow = self._frame_sender(), self._flow
        try:
            if rest is not None:
                await rest
            while True:
                if flow is not None and flow.paused:
                    await flow.resumed()
                outbox = self._outbox
                if not outbox:
                    break
                if self.protocol > 1:
                    text, taken = outgoing.take(outbox)
                    self._outbox_bytes -= sum(_size(t) for t in taken)
                else:
                    text = outbox.popleft()
                    self._outbox_bytes -= _size(text)
                await send({"type": "websocket.send", "text": text})
        except Exception as exc:
            _send_failed(self.window_id, exc)
        finally:
            if rest is not None:
                rest.close()
            self._outbox = None
            self._outbox_bytes = 0

    def _overflow(self, why: str) -> None:
        """Too much is waiting for this window: close it rather than hold more.

        The client reconnects and resumes from history, so nothing is lost silently.
        """
        metrics.increment("slow_clients_closed")
        logger.warning(
            "Closed window %s with 4507: over %d bytes were waiting to be written (%s).",
            self.window_id,
            fc_settings.MAX_BUFFERED_BYTES,
            why,
            extra={"window_id": self.window_id},
        )
        self._closed = True
        self._held = None
        if self._outbox is not None:
            self._outbox.clear()
        spawn(self.close(CloseCode.SLOW_CLIENT), "close a slow window")

    def _frame_sender(self) -> Any:
        send = self._frame_send
        if send is None:
            # Channels' session middleware wraps send() only to save the session on an HTTP
            # response; for every websocket frame it still resolves the lazy session twice,
            # which was 15-20 % of the server's time in a 1,000-socket fan-out (py-spy).
            # Frames go to the server's own send.
            send = self._send
            while isinstance(getattr(send, "__self__", None), InstanceSessionWrapper):
                send = send.__self__.real_send
            self._frame_send = send
        return send

    async def close(self, code: int = CloseCode.NORMAL, reason: str | None = None) -> None:
        """Close the socket with ``code`` and a reason a developer can read (``reason``, or
        the code's usual one: protocol.CLOSE_REASONS)."""
        message = {"type": "websocket.close", "code": code, "reason": close_reason(code, reason)}
        try:
            if not close_with_reason(self._send, message):
                await self._send(message)
        except Exception:  # already gone: nothing left to close
            logger.debug("Window %s was already closed.", self.window_id, exc_info=True)


async def _refuse_handshake(scope: dict[str, Any], send: Any, reason: str) -> None:
    """Refuse a websocket before accepting it: HTTP 403, with ``reason`` as the body where
    the server supports ASGI's denial responses (uvicorn, hypercorn; daphne answers 403
    "Access denied" whatever the application says)."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = reason.encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": CloseCode.KEY_REFUSED, "reason": reason})


#: Kinds of send errors already logged at WARNING (bounded: there are few kinds).
_send_errors_logged: set[str] = set()


def _send_failed(window_id: str, exc: Exception) -> None:
    """Count a frame the server would not take. A socket that is going away is routine (a
    debug line); any other kind of refusal is logged once as a WARNING, then counted."""
    metrics.increment("send_errors")
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    routine = isinstance(exc, OSError) or "Closed" in kind or "Disconnect" in kind
    if routine or kind in _send_errors_logged or len(_send_errors_logged) >= 32:
        logger.debug("Could not write to window %s.", window_id, exc_info=exc)
        return
    _send_errors_logged.add(kind)
    logger.warning(
        "A server refused a frame for window %s (%s: %s); further ones are counted as send_errors.",
        window_id,
        kind,
        exc,
    )


def _size(text: str) -> int:
    """Bytes ``text`` takes on the wire (UTF-8), computed cheaply for ASCII."""
    return len(text) if text.isascii() else len(text.encode())


def _client(scope: dict[str, Any]) -> str:
    client = scope.get("client") or ("?", 0)
    return f"{client[0]}:{client[1]}"
