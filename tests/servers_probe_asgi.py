"""A bare ASGI app that finds out what the server it runs under does with a non-reading client.

tests/test_servers.py serves it with each server. On a websocket, once the client says "go"
(and stops reading), it asks :func:`floorchannels.servers.flow_control` about the server's
send, then writes 16 KiB frames, and records what it saw; ``GET /report`` answers it (over
another connection, as the websocket is not being read):

- ``{"flow": true, "paused_after": bytes}``: the flow control paused (daphne); the app then
  waits for ``resumed()`` (the test starts reading) and adds ``"resumed": true``;
- ``{"flow": false, "suspended_after": bytes}``: the server's own send stopped completing;
- ``{"flow": ..., "unbounded": bytes}``: neither happened within 64 MiB.

On ``/burst`` it writes ``BURST`` frames and a close at once, and records which object
writes to the transport (``{"writer": ...}``). On ``/handshake`` it records what daphne's
protocol still holds of the handshake once the socket is open (``{"handshake": ...}``; under uvicorn's websockets-sansio, what its protocol keeps), and
the report says whether the replaced HTTP channel is gone (``channel_freed``); with
``PROBE_GC=0`` in its environment the process runs without the cyclic garbage collector. On ``/texts`` it writes ``TEXTS`` through
``send_text`` where the server offers it, each also through the server's send. On ``/wrapped`` it only asks about a send wrapped in a function of its own, and records
``{"wrapped_flow": bool}``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import weakref

from floorchannels import servers
from tests.lifespan import serve_lifespan

FRAME = "x" * 16384
LIMIT = 64 * 1024 * 1024
BURST = 2000
#: Around each frame header size (RFC 6455: 7-bit, 16-bit, 64-bit lengths), in bytes once
#: encoded ("é" is two).
TEXTS = ["", "a", "é" * 62 + "a", "b" * 126, "é" * 100, "c" * 65535, "é" * 32768, "d" * 70000]
report: dict = {}
#: The HTTP channel that upgraded the /handshake socket (a weak reference).
channel: weakref.ref | None = None

if os.environ.get("PROBE_GC") == "0":
    gc.disable()


async def probe(send) -> None:
    flow = servers.flow_control(send)
    written = 0
    while written < LIMIT:
        if flow is not None and flow.paused:
            report.update(flow=True, paused_after=written)
            await asyncio.wait_for(flow.resumed(), 30)
            report["resumed"] = True
            return
        try:
            await asyncio.wait_for(send({"type": "websocket.send", "text": FRAME}), 2)
        except TimeoutError:
            report.update(flow=flow is not None, suspended_after=written)
            return
        written += len(FRAME)
    report.update(flow=flow is not None, unbounded=written)


async def application(scope, receive, send):
    global channel
    if scope["type"] == "lifespan":
        return await serve_lifespan(receive, send)
    if scope["type"] == "http":
        if channel is not None:
            report["channel_freed"] = channel() is None
        body = json.dumps(report).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    if scope["path"] == "/burst":
        # BURST frames written in one go, then a close: what a fan-out to one socket does.
        flow = servers.flow_control(send)
        transport = getattr(getattr(send, "args", [None])[0], "transport", None)
        writer = getattr(transport, "producer", None)
        report["writer"] = type(writer).__name__ if flow is not None else None
        report["transport"] = type(transport).__name__
        for n in range(BURST):
            await send({"type": "websocket.send", "text": f"{n}:" + "y" * (n % 300)})
        await send({"type": "websocket.close", "code": 4000, "reason": "burst done"})
        return
    if scope["path"] == "/handshake":
        if servers._is_daphne(send):
            protocol = send.args[0]
            channel = weakref.ref(protocol.transport.producer)
            servers.flow_control(send)
            kept = [name for name in servers._HANDSHAKE_STATE if getattr(protocol, name) is not None]
            kept += [f"request.{name}" for name in ("headers", "params") if getattr(protocol.request, name)]
            report["handshake"] = {"kept": kept, "path": protocol.request.path}
        else:  # uvicorn's websockets-sansio
            protocol = send.__self__
            servers.flow_control(send)
            kept = [name for name in ("request", "response") if getattr(protocol, name) is not None]
            report["handshake"] = {"kept": kept, "path": scope["path"]}
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    if scope["path"] == "/texts":
        # TEXTS written through the flow control's own framing where it offers one, each
        # followed by the same text through the server's send, then a close.
        flow = servers.flow_control(send)
        framed_here = 0
        for text in TEXTS:
            framed_here += flow is not None and flow.send_text(text)
            await send({"type": "websocket.send", "text": text})
        report["framed_here"] = framed_here
        await send({"type": "websocket.close", "code": 4000, "reason": "texts done"})
        return
    if scope["path"] == "/wrapped":
        # An ASGI middleware's own send function in front of the server's.
        async def wrapped(message):
            await send(message)

        report["wrapped_flow"] = servers.flow_control(wrapped) is not None
        return
    await receive()  # "go": the client has stopped reading
    try:
        await probe(send)
    except Exception as exc:
        report["error"] = repr(exc)
        raise
    while (await receive())["type"] != "websocket.disconnect":
        pass
