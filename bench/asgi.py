"""The applications under test, one per server process so each is measured alone.

- ``fc_application``: floorchannels as a project routes it (``websocket_urlpatterns``).
- ``raw_application``: a minimal raw Channels consumer (a group and ``send_json``).
- :mod:`bench.limit`: a bare ASGI app with no Django and no channel layer.

Both Django applications also answer ``POST /publish`` (body: the message's kwargs as
JSON, or a list of them) by publishing from inside the server. The harness uses it only for the in-memory
layer, which another process cannot reach; with Redis it publishes from its own process.
"""

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from floorchannels import BROADCAST, acall  # noqa: E402
from floorchannels.routing import websocket_urlpatterns  # noqa: E402

SIGNAL = "bench.message"
RAW_GROUP = "bench"


class RawConsumer(AsyncJsonWebsocketConsumer):
    """What a Channels user writes: join a group on connect, forward its messages."""

    groups = [RAW_GROUP]

    async def bench_message(self, event):
        await self.send_json(event["kwargs"])


async def publish_fc(kwargs):
    await acall(SIGNAL, BROADCAST, kwargs=kwargs)


async def publish_raw(kwargs):
    await get_channel_layer().group_send(RAW_GROUP, {"type": "bench.message", "kwargs": kwargs})


async def read_body(receive):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def publish_endpoint(publish):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = json.loads(await read_body(receive))
        for kwargs in body if isinstance(body, list) else [body]:
            await publish(kwargs)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


fc_application = ProtocolTypeRouter(
    {"websocket": URLRouter(websocket_urlpatterns), "http": publish_endpoint(publish_fc)}
)
raw_application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/raw/", RawConsumer.as_asgi())]), "http": publish_endpoint(publish_raw)}
)

if os.environ.get("BENCH_GC_LOG"):
    # Diagnostics: print each garbage collection over 2 ms (they stop the event loop).
    import gc
    import sys
    import time

    _gc_start = {}

    def _gc_log(phase, info):
        if phase == "start":
            _gc_start["t"] = time.perf_counter()
            return
        ms = (time.perf_counter() - _gc_start["t"]) * 1000
        if ms > 2:
            print(
                f"{time.time():.2f} GC gen{info['generation']} {ms:.1f} ms, {len(gc.get_objects())} objects",
                file=sys.stderr,
                flush=True,
            )

    gc.callbacks.append(_gc_log)

if os.environ.get("BENCH_TRACE"):
    # Diagnostics for the latency tail (bench/tail.py): timestamps of every hub batch (when
    # the hub received each message, when its fan-out started and ended), every garbage
    # collection over 0.5 ms, and every stretch of over 5 ms in which the event loop could
    # not run a 5 ms timer. One JSON object per line, in BENCH_TRACE/<pid>.jsonl.
    import asyncio
    import gc
    import time

    from floorchannels import hub as _hub

    _trace = open(os.path.join(os.environ["BENCH_TRACE"], f"{os.getpid()}.jsonl"), "a", buffering=1)  # noqa: SIM115
    _received: dict[int, float] = {}
    _gc_at: dict[str, float] = {}

    def _event(**fields):
        _trace.write(json.dumps(fields) + "\n")

    def _publish_times(batch):
        times = []
        for message in batch:
            try:
                times.append(json.loads(message["frame"])["kwargs"]["t"])
            except (KeyError, TypeError, ValueError):
                times.append(None)
        return times

    _original_receive = _hub.Hub._receive
    _original_receive_ready = _hub.Hub._receive_ready
    _original_deliver_many = _hub.Hub.deliver_many

    async def _traced_receive(self):
        message = await _original_receive(self)
        _received[id(message)] = time.time()
        return message

    async def _traced_receive_ready(self):
        message = await _original_receive_ready(self)
        if message is not None:
            _received[id(message)] = time.time()
        return message

    async def _traced_deliver_many(self, batch):
        start = time.time()
        await _original_deliver_many(self, batch)
        _event(
            kind="batch",
            published=_publish_times(batch),
            received=[_received.pop(id(m), None) for m in batch],
            start=start,
            end=time.time(),
            frames=sum(len(self.groups.get(m.get("group", ""), ())) for m in batch),
        )

    _hub.Hub._receive = _traced_receive
    _hub.Hub._receive_ready = _traced_receive_ready
    _hub.Hub.deliver_many = _traced_deliver_many

    def _gc_trace(phase, info):
        if phase == "start":
            _gc_at["t"] = time.perf_counter()
            return
        ms = (time.perf_counter() - _gc_at["t"]) * 1000
        if ms > 0.5 or info["generation"] == 2:
            _event(kind="gc", at=time.time(), generation=info["generation"], ms=round(ms, 2))

    gc.callbacks.append(_gc_trace)

    async def _loop_lag():
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            lag = loop.time() - before - 0.005
            if lag > 0.005:
                _event(kind="lag", at=time.time(), ms=round(lag * 1000, 1))

    _lag_task = []

    def _traced(application):
        async def app(scope, receive, send):
            if not _lag_task:
                _lag_task.append(asyncio.ensure_future(_loop_lag()))
            await application(scope, receive, send)

        return app

    fc_application = _traced(fc_application)

if os.environ.get("BENCH_DAPHNE_WRITE_NOW"):
    import asyncio

    # Experiment (docs/benchmarks.md, round 2): under daphne, Twisted buffers every write and
    # registers a writer, and sends on a later loop turn; here a write to a socket with
    # nothing buffered is sent at once, as asyncio's own transports do, and only what the
    # kernel does not take is buffered the usual way. Order is kept: the direct send happens
    # only when nothing is waiting before it.
    from twisted.internet import abstract, tcp

    _buffered_write = abstract.FileDescriptor.write

    def _write_now(self, data):
        if (
            data
            and isinstance(self, tcp.Connection)
            and self.connected
            and not self._writeDisconnected
            and not self.dataBuffer
            and not self._tempDataBuffer
        ):
            try:
                sent = self.socket.send(data)
            except OSError:
                sent = 0  # EAGAIN, or an error the usual path will find and report
            if sent == len(data):
                return
            data = data[sent:]
        _buffered_write(self, data)

    # BENCH_DAPHNE_WRITE_NOW=batch: a socket's writes of one loop turn are joined and sent
    # together once the turn's work (the hub's fan-out) is done: one send() per socket per
    # turn as with Twisted's writer, without registering and removing a writer each time.
    _unsent: dict = {}

    def _send_unsent():
        connections = list(_unsent.items())
        _unsent.clear()
        for connection, chunks in connections:
            _write_now(connection, b"".join(chunks))

    def _write_batched(self, data):
        chunks = _unsent.get(self)
        if chunks is not None:
            chunks.append(data)
        elif data and isinstance(self, tcp.Connection) and not self.dataBuffer and not self._tempDataBuffer:
            if not _unsent:
                asyncio.get_running_loop().call_soon(_send_unsent)
            _unsent[self] = [data]
        else:
            _buffered_write(self, data)

    abstract.FileDescriptor.write = (
        _write_batched if os.environ["BENCH_DAPHNE_WRITE_NOW"] == "batch" else _write_now
    )

if os.environ.get("BENCH_UVICORN_WRITE_BATCH"):
    # Experiment (docs/benchmarks.md, round 2): asyncio's socket transport sends every write
    # at once, so under uvicorn a burst costs a send() per frame. Here a transport's writes
    # of one loop turn are joined and handed to the transport once, in a callback scheduled
    # once per turn (every transport of the process: Redis connections too).
    import asyncio
    from asyncio import selector_events

    _transport_write = selector_events._SelectorSocketTransport.write
    _turn_writes: dict = {}

    def _write_turn():
        transports = list(_turn_writes.items())
        _turn_writes.clear()
        for transport, chunks in transports:
            _transport_write(transport, b"".join(chunks))

    def _write_once_per_turn(self, data):
        chunks = _turn_writes.get(self)
        if chunks is not None:
            chunks.append(bytes(data))
            return
        if not _turn_writes:
            asyncio.get_running_loop().call_soon(_write_turn)
        _turn_writes[self] = [bytes(data)]

    selector_events._SelectorSocketTransport.write = _write_once_per_turn
