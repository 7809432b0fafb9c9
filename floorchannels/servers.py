"""What each ASGI server does when a client stops reading, and the hook where it does nothing.

A socket whose client stops reading must not make the server hold an unbounded amount of
data for it. The consumer writes without waiting (floorchannels.sending) and bounds what
waits in its own outbox (``MAX_BUFFERED_BYTES``); it needs to know when the server itself
is holding data back:

- uvicorn (``--ws websockets``, ``wsproto`` and ``websockets-sansio``), hypercorn and
  granian: their ``send`` suspends while the socket's write buffer is over its high-water
  mark (granian: while its Rust side has not written the frame; its send returns a future,
  not a coroutine, see docs/deployment.md). That suspension is the signal; nothing more is
  needed, and :func:`flow_control` returns ``None``.
- daphne: its ``send`` hands the frame to twisted and returns at once, whatever the client
  does; twisted buffers everything. So we register a streaming producer on the twisted
  transport (twisted's public ``IConsumer.registerProducer``): twisted calls
  ``pauseProducing()`` when its buffer passes its high-water mark (64 KiB) and
  ``resumeProducing()`` when it has drained, and the consumer treats "paused" like a send
  that suspended.

Reaching the transport takes knowledge of daphne's internals (its ``send`` is
``functools.partial(server.handle_reply, protocol)``); every such access is in this module,
and tests/test_servers.py fails when daphne changes it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

logger = logging.getLogger("floorchannels.servers")


class FlowControl:
    """A server's write buffer seen from the application: ``paused`` while it is full.

    One per socket under daphne only (the servers whose ``send`` waits need none), so it
    is slotted: two attributes.
    """

    __slots__ = ("paused", "_waiter")

    def __init__(self) -> None:
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None

    async def resumed(self) -> None:
        """Return once the server takes writes again (at once if it does now)."""
        while self.paused:
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            # Shielded: one waiter cancelled (its window closed) must not cancel the
            # future that others may share.
            await asyncio.shield(waiter)

    # twisted.internet.interfaces.IPushProducer, called by the transport (on the loop's
    # thread: daphne runs twisted on the asyncio reactor).

    def pauseProducing(self) -> None:  # noqa: N802 - twisted's interface
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.paused = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def stopProducing(self) -> None:  # noqa: N802
        # The connection is gone: nothing will drain any more, and nothing is buffered
        # either. Let a waiting writer go on (its sends are dropped by the server).
        self.resumeProducing()

    def send_text(self, text: str) -> bool:
        """Write a text message without the server's send, where that is possible (see
        _TurnWriter.send_text); False: use the server's send."""
        return False


#: A server's way of building a socket's FlowControl from its send, or None when its send
#: suspends by itself; detected once per kind of send (see _server_of).
_probes: dict[type, Callable[[Any], FlowControl | None] | None] = {}


def flow_control(send: Any) -> FlowControl | None:
    """The flow control of the socket behind ``send``, or None where ``send`` waits itself.

    Called once per socket, once it is open. ``send`` is the ASGI send the application was
    given (Channels' session wrapper around it is looked through). Under daphne and
    uvicorn's websockets-sansio this also lets go of what the handshake left behind (see
    _release_handshake).
    """
    send = _unwrap(send)
    server = _server_of(send)
    try:
        probe = _probes[server]
    except KeyError:
        probe = _probes[server] = _probe_for(send)
    return probe(send) if probe is not None else None


def _unwrap(send: Any) -> Any:
    """Look through Channels' ``InstanceSessionWrapper.send`` to the server's own send."""
    while hasattr(getattr(send, "__self__", None), "real_send"):
        send = send.__self__.real_send
    return send


def _server_of(send: Any) -> type:
    """What identifies the server behind ``send``: the class that owns it."""
    if isinstance(send, functools.partial):
        send = send.func
    owner = getattr(send, "__self__", None)
    return type(owner) if owner is not None else type(send)


def _probe_for(send: Any) -> Callable[[Any], FlowControl | None] | None:
    if _is_daphne(send):
        _declare_push_producer()
        return _daphne_flow_control
    if _is_uvicorn_sansio(send):
        return _uvicorn_sansio_opened
    if _under_twisted():
        # daphne, but its send is hidden behind an ASGI middleware's own function: twisted
        # would buffer whatever the client leaves unread. Say so rather than pretend.
        _warn_once(
            "The websocket send %r is not daphne's own (an ASGI middleware wraps it?): "
            "floorchannels cannot see twisted's buffer, so MAX_BUFFERED_BYTES is not enforced.",
            send,
        )
    return None


def _under_twisted() -> bool:
    reactor = sys.modules.get("twisted.internet.reactor")
    return bool(getattr(reactor, "running", False))


# uvicorn -----------------------------------------------------------------------------------


def _is_uvicorn_sansio(send: Any) -> bool:
    """uvicorn's ``websockets-sansio`` send (its default websocket implementation since 0.35):
    a bound method of its protocol."""
    owner = getattr(send, "__self__", None)
    return (
        type(owner).__name__ == "WebSocketsSansIOProtocol"
        and type(owner).__module__ == "uvicorn.protocols.websockets.websockets_sansio_impl"
    )


def _uvicorn_sansio_opened(send: Any) -> None:
    """Let go of the handshake's request and response that uvicorn's protocol keeps (read
    only until the handshake completes); its send waits by itself: no flow control."""
    protocol = send.__self__
    if protocol.handshake_complete:
        protocol.request = protocol.response = None
    return None


# daphne ------------------------------------------------------------------------------------


def _is_daphne(send: Any) -> bool:
    """daphne's send: ``functools.partial(Server.handle_reply, protocol)``."""
    return (
        isinstance(send, functools.partial)
        and len(send.args) == 1
        and getattr(send.func, "__name__", "") == "handle_reply"
        and type(getattr(send.func, "__self__", None)).__module__.startswith("daphne.")
    )


def close_with_reason(send: Any, message: dict[str, Any]) -> bool:
    """Close a daphne websocket with the message's reason; False when ``send`` is not daphne's.

    daphne (4.2) drops the ``reason`` of ``websocket.close`` (django/daphne#374): its
    protocol calls autobahn's ``sendClose`` with the code only. Calling ``sendClose`` with
    both does what daphne would, plus the reason. Only on an open socket; anything else
    goes through daphne's own send. tests/e2e/test_token_clients.py reads the reason
    through a real daphne, so a daphne that changes this fails there.
    """
    send = _unwrap(send)
    if not _is_daphne(send):
        return False
    protocol = send.args[0]
    server = getattr(send.func, "__self__", None)
    connection = getattr(server, "connections", {}).get(protocol)
    if connection is None or connection.get("disconnected"):
        return True  # daphne's send would do nothing either
    if getattr(protocol, "state", None) != getattr(protocol, "STATE_OPEN", object()):
        return False
    protocol.sendClose(code=message["code"], reason=message["reason"] or None)
    return True


def _daphne_transport(send: Any) -> Any:
    """The twisted transport (TCP, or TLS wrapping TCP) behind daphne's send."""
    return getattr(send.args[0], "transport", None)


def _daphne_flow_control(send: Any) -> FlowControl | None:
    transport = _daphne_transport(send)
    if transport is None:  # already disconnected
        return None
    _release_handshake(send.args[0])
    stale = _registered_producer(transport)
    if stale is not None:
        # daphne upgrades a connection by handing its transport from the HTTP channel to
        # the websocket protocol, but leaves the channel registered as the transport's
        # producer, where it no longer has anything to produce. Take its place; anything
        # else registered there is someone else's and is left alone.
        if not _is_replaced_http_channel(stale, transport):
            _warn_once(
                "The transport of a daphne websocket already has a producer (%r): "
                "MAX_BUFFERED_BYTES cannot be enforced for its sockets.",
                stale,
            )
            return None
        transport.unregisterProducer()
        # The channel and its upgraded request refer to each other, so only a full garbage
        # collection would free them (with the request's headers), long after daphne has
        # forgotten the request. Nothing reads the channel's requests again: its transport
        # is the websocket's now.
        del stale.requests[:]
    from twisted.internet import tcp

    # Plain TCP only: under TLS twisted's own write path is kept.
    flow = _TurnWriter(transport, send.args[0]) if type(transport) is tcp.Server else FlowControl()
    transport.registerProducer(flow, True)
    if type(flow) is _TurnWriter:
        transport.__class__ = _turn_server_class()
    return flow


#: What autobahn keeps of the opening handshake (its server side reads them only while
#: the handshake is processed): the request as received, its headers parsed, its parts and
#: the response sent. A socket holds them for as long as it is open; with a browser's
#: cookies and user agent, a few KiB each.
_HANDSHAKE_STATE = (
    "http_request_data",
    "http_status_line",
    "http_headers",
    "http_request_uri",
    "http_request_host",
    "http_request_path",
    "http_request_params",
    "http_response_data",
    "_wskey",
)
_NOTHING: Mapping[str, Any] = MappingProxyType({})


def _release_handshake(protocol: Any) -> None:
    """Let go of what an open daphne socket keeps of its handshake and will not read again.

    daphne gave the application what it needs of the request (the scope, with its own copy
    of the headers). What stays is autobahn's (see _HANDSHAKE_STATE) and daphne's
    ``request`` (autobahn's ConnectionRequest, the same headers and query parameters): of
    it daphne reads only ``path``, for its access log.
    """
    if protocol.state != protocol.STATE_OPEN:
        return
    for name in _HANDSHAKE_STATE:
        setattr(protocol, name, None)
    request = getattr(protocol, "request", None)
    if request is not None:
        request.headers = request.params = _NOTHING


class _TurnWriter(FlowControl):
    """A daphne socket's flow control, and its frames of the current loop turn.

    Twisted's write buffers every frame and registers the socket for writability, and on
    a later loop turn sends it and unregisters: two ``epoll_ctl`` calls per socket and
    message, and a second pass over every socket of a fan-out, so that even the first
    socket waited for the whole first pass (docs/benchmarks.md, "where the tail comes
    from"). Here the frames written to an idle socket during a turn (the hub's fan-out)
    are joined and sent with twisted's own ``writeSomeData`` once the turn is over; only
    what the kernel does not take goes through twisted's buffer, with its flow control.

    The transport finds it as its registered producer (see _turn_server_class), so no
    attribute is added to the transport: an idle socket costs a few slots more.
    """

    __slots__ = ("transport", "protocol", "plain", "chunks", "size")

    def __init__(self, transport: Any, protocol: Any) -> None:
        super().__init__()
        self.transport = transport
        #: daphne's websocket protocol (autobahn's WebSocketServerProtocol).
        self.protocol = protocol
        #: Whether a text message can be framed here (see send_text); None: not known yet.
        self.plain: bool | None = None
        self.chunks: list[bytes] | None = None
        self.size = 0

    def send_text(self, text: str) -> bool:
        """Write a text message as one websocket frame built here, as autobahn would.

        daphne's send goes through its server, its protocol and autobahn's ``sendMessage``,
        which builds the frame in Python and formats debug output for it whatever the log
        level: most of a fan-out's time per socket under daphne. A server frame is the
        payload behind a 2-10 byte header, and a fan-out writes the same text to every
        socket, so the frame is built once per text (see _text_frame). Only on an open
        connection with nothing autobahn would do differently (compression, fragmenting,
        masking, frame logging, timings); otherwise False, and the server's send is used.
        """
        protocol = self.protocol
        if not text or protocol.state != protocol.STATE_OPEN:
            return False  # (daphne sends nothing for an empty text: nor does this)
        plain = self.plain
        if plain is None:
            plain = self.plain = _plain_protocol(protocol)
        if not plain:
            return False
        frame = _text_frame(text)
        limit = protocol.maxMessagePayloadSize
        if limit and len(frame) > limit:
            return False  # near or over daphne's limit: autobahn's path decides (and says so)
        self.write(frame)
        return True

    def write(self, data: bytes) -> None:
        chunks = self.chunks
        if chunks is not None:
            chunks.append(data)
            self.size += len(data)
            if self.size > self.transport.bufferSize:
                # As much as twisted's own buffer holds before it pauses the producer: send
                # now, so a client that is not reading pauses the window's writes in time.
                self.flush()
            return
        transport = self.transport
        if not data or transport.disconnecting or transport.dataBuffer or transport._tempDataBuffer:
            _buffered_write(transport, data)  # in order behind what twisted holds, or nothing to do
            return
        self.chunks = [data]
        self.size = len(data)
        global _turn_loop
        loop = asyncio.get_running_loop()
        if not _turn_writers or _turn_loop is not loop:  # (a stopped loop never flushed)
            _turn_loop = loop
            loop.call_soon(_end_of_turn)
        _turn_writers.append(self)

    def flush(self) -> None:
        chunks, self.chunks = self.chunks, None
        if not chunks:
            return
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        transport = self.transport
        if (
            transport.connected
            and not transport.disconnecting
            and not transport.dataBuffer
            and not transport._tempDataBuffer
        ):
            sent = transport.writeSomeData(data)
            if not isinstance(sent, int):  # the connection is lost: twisted's path reports it
                sent = 0
            data = data[sent:]
        if data:
            _buffered_write(transport, data)

    def stopProducing(self) -> None:  # noqa: N802 - twisted's interface
        # Twisted forgets its producer as the connection is lost: from then on the
        # transport's writes take twisted's path, which drops them.
        self.chunks = None
        super().stopProducing()


def _plain_protocol(protocol: Any) -> bool:
    """Whether autobahn would send a text message of ``protocol`` as one plain frame."""
    return (
        protocol._perMessageCompress is None
        and not protocol.trackedTimings
        and not protocol.logFrames
        and not protocol.maskServerFrames
        and not protocol.autoFragmentSize
        and protocol.send_state == protocol.SEND_STATE_GROUND
    )


#: The last text framed, and its frame: a fan-out frames each text once. One tuple, so
#: that a reader never sees one text with another's frame.
_last_framed: tuple[str, bytes] = ("", b"")


def _text_frame(text: str) -> bytes:
    """A final, unmasked websocket text frame carrying ``text`` (RFC 6455, 5.2)."""
    global _last_framed
    last = _last_framed
    if last[0] is text:
        return last[1]
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65536:
        header = b"\x81\x7e" + size.to_bytes(2, "big")
    else:
        header = b"\x81\x7f" + size.to_bytes(8, "big")
    frame = header + payload
    _last_framed = (text, frame)
    return frame


def _buffered_write(transport: Any, data: bytes) -> None:
    """Twisted's own write (buffered, with its flow control)."""
    from twisted.internet import tcp

    tcp.Server.write(transport, data)


@functools.cache
def _turn_server_class() -> type:
    """twisted's ``tcp.Server``, with writes going through the socket's _TurnWriter.

    A daphne websocket's transport is switched to this class once it is accepted (same
    layout, no attribute added), rather than given bound methods of its own: an instance
    attribute per method made every transport's ``__dict__`` grow (about 1 KiB a socket).
    """
    from twisted.internet import tcp

    class TurnServer(tcp.Server):
        def write(self, data: bytes) -> None:
            writer = self.producer
            if type(writer) is _TurnWriter:
                writer.write(data)
            else:
                tcp.Server.write(self, data)

        def loseConnection(self, *args: Any) -> None:  # noqa: N802 - twisted's interface
            writer = self.producer
            if type(writer) is _TurnWriter:
                writer.flush()  # what was written before the close goes first
            tcp.Server.loseConnection(self, *args)

    TurnServer.__module__ = __name__
    return TurnServer


#: The daphne sockets written to during the current loop turn, flushed at its end.
_turn_writers: list[_TurnWriter] = []
_turn_loop: asyncio.AbstractEventLoop | None = None


def _end_of_turn() -> None:
    writers = _turn_writers[:]
    _turn_writers.clear()
    for writer in writers:
        try:
            writer.flush()
        except Exception:
            logger.exception("Writing a daphne websocket's frames failed.")


def _registered_producer(transport: Any) -> Any:
    """The producer registered on ``transport``: on TCP ``producer`` (twisted's
    FileDescriptor), on TLS ``_producer._producer`` (a membrane around it)."""
    producer = getattr(transport, "producer", None)
    if producer is None:
        membrane = getattr(transport, "_producer", None)
        producer = getattr(membrane, "_producer", None)
    return producer


def _is_replaced_http_channel(producer: Any, transport: Any) -> bool:
    """True for an HTTP channel that no longer owns ``transport``: the connection's
    protocol (TLS: the wrapped protocol) is now the websocket."""
    from twisted.web.http import HTTPChannel

    owner = getattr(transport, "wrappedProtocol", None) or getattr(transport, "protocol", None)
    return isinstance(producer, HTTPChannel) and owner is not None and owner is not producer


def _declare_push_producer() -> None:
    """Declare FlowControl a twisted IPushProducer (once, and only under daphne, so that
    other servers never import twisted)."""
    from twisted.internet.interfaces import IPushProducer
    from zope.interface import classImplements

    if not IPushProducer.implementedBy(FlowControl):
        classImplements(FlowControl, IPushProducer)


_warned: set[str] = set()


def _warn_once(message: str, *args: Any) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message, *args)
