"""A light websocket client process: many sockets, timestamps only, parsing after the fact.

One process holds many sockets. Each socket is a plain asyncio protocol with a minimal
RFC 6455 client (handshake, unmasked server frames, pings answered); on data it only
appends ``(receive time, payload)``, so the client costs little while the server is being
measured. Frames are parsed when the harness asks for results.

Driven by the harness over stdin/stdout, one JSON object per line:
``{"cmd": "connect", "n": 100}``, ``{"cmd": "reset"}``, ``{"cmd": "collect", "seqs": [...],
"quiet": 2.0, "timeout": 60}``, ``{"cmd": "exit"}``. Each command is answered by one line.

``--protocol`` is the floorchannels protocol version the hello asks for (2 by default, 1 to
compare). A version 2 server sends each signal as a compact array, ``[signal, kwargs, ...]``,
and may put a socket's signals of one hub batch in one message (an array of frames);
:func:`signals` reads all three shapes, so one message may be several deliveries.

``--socketio`` speaks the Socket.IO 4 protocol (Engine.IO v4) over the plain websocket
transport, for the Socket.IO peers: the server opens with ``0{...}``, the client connects
to the default namespace with ``40`` and is ready on the server's ``40{...}``; events
arrive as ``42["m", {...}]``; the server pings with ``2`` and the client answers ``3``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time

HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame. The mask key is zero, so the payload needs no XOR."""
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, 0x80 | length])
    elif length < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


def sio_event(payload: bytes) -> dict | None:
    """The data of a Socket.IO event packet (``42["m", data]``), or None for other packets."""
    if payload[:2] != b"42":
        return None
    return json.loads(payload[2:])[1]


def frame_kwargs(frame: object) -> dict | None:
    """One frame's signal kwargs: a compact signal (array, string head), a v1 signal object
    (kwargs under ``"kwargs"``), or a bare payload object (raw Channels, the limit app);
    None for any other frame (welcome, reply, pong, ...)."""
    if isinstance(frame, list):
        return frame[1] if frame and isinstance(frame[0], str) else None
    if isinstance(frame, dict):
        if "kwargs" in frame:
            return frame["kwargs"] if frame.get("type", "signal") == "signal" else None
        return None if "type" in frame else frame
    return None


def signals(payload: bytes, socketio: bool = False) -> list[dict]:
    """The signals' kwargs in one websocket message, in order (several when it is a batch)."""
    if socketio:
        kwargs = sio_event(payload)
        return [] if kwargs is None else [kwargs]
    message = json.loads(payload)
    if isinstance(message, list) and message and not isinstance(message[0], str):
        return [kwargs for frame in message if (kwargs := frame_kwargs(frame)) is not None]  # a batch
    kwargs = frame_kwargs(message)
    return [] if kwargs is None else [kwargs]


def json_size(value: object) -> int:
    """Bytes of ``value`` as compact JSON: a payload's own size, to tell the envelope apart."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


class Socket(asyncio.Protocol):
    def __init__(self, client: Client, hello: bytes | None) -> None:
        self.client = client
        self.hello = hello
        self.ready = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.received: list[tuple[float, bytes]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.client.handshake)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.lost += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before ready"))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(buffer[:60].decode(errors="replace")))
                self.transport.close()
                return
            self.upgraded = True
            buffer = buffer[end + 4 :]
            if self.client.socketio:
                pass  # the server speaks first (Engine.IO open)
            elif self.hello is None:
                self.ready.set_result(None)
            else:
                self.transport.write(client_frame(1, self.hello))
        position, size = 0, len(buffer)
        while size - position >= 2:
            opcode = buffer[position] & 0x0F
            length = buffer[position + 1] & 0x7F
            start = position + 2
            if length == 126:
                if size - position < 4:
                    break
                length = int.from_bytes(buffer[start : start + 2], "big")
                start += 2
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(buffer[start : start + 8], "big")
                start += 8
            end = start + length
            if end > size:
                break
            payload = buffer[start:end]
            position = end
            if opcode == 1 and self.client.socketio:
                self.socketio_packet(now, payload)
            elif opcode == 1:
                if self.ready.done():
                    self.received.append((now, payload))
                else:
                    self.ready.set_result(payload)  # the welcome
            elif opcode == 9:
                self.transport.write(client_frame(10, payload))
            elif opcode == 8:
                self.transport.close()
        self.buffer = buffer[position:]
        self.client.last_receive = now

    def socketio_packet(self, now: float, payload: bytes) -> None:
        if payload[:2] == b"42" and self.ready.done():
            self.received.append((now, payload))
        elif payload[:1] == b"2":  # Engine.IO ping
            self.transport.write(client_frame(1, b"3"))
        elif payload[:1] == b"0":  # Engine.IO open: connect to the default namespace
            self.transport.write(client_frame(1, b"40"))
        elif payload[:2] == b"40" and not self.ready.done():
            self.ready.set_result(payload)


class Client:
    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        keys: bool,
        socketio: bool = False,
        source: str | None = None,
        protocol: int = 2,
    ) -> None:
        self.host, self.port = host, port
        self.protocol = protocol
        #: The loopback address this process connects from (127.0.0.x): each source address
        #: has its own ~28,000 ephemeral ports, so 100,000 sockets need several.
        self.local_addr = (source, 0) if source else None
        self.socketio = socketio
        self.handshake = HANDSHAKE.format(path=path, host=host, port=port).encode()
        self.keys = keys
        self.sockets: list[Socket] = []
        self.lost = 0
        self.last_receive = 0.0
        if keys:
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
            import django

            django.setup()

    def hellos(self, n: int) -> list[bytes | None]:
        if not self.keys:
            return [None] * n
        from types import SimpleNamespace

        from django.contrib.auth.models import AnonymousUser

        from floorchannels import window_key

        request = SimpleNamespace(user=AnonymousUser())
        return [
            json.dumps(
                {"type": "hello", "window_key": window_key(request), "protocol": self.protocol}
            ).encode()
            for _ in range(n)
        ]

    async def open(self, hello: bytes | None) -> Socket:
        loop = asyncio.get_running_loop()
        _, socket = await loop.create_connection(
            lambda: Socket(self, hello), self.host, self.port, local_addr=self.local_addr
        )
        welcome = await asyncio.wait_for(socket.ready, 30)
        if hello is not None:
            answered = json.loads(welcome).get("protocol")
            if answered != self.protocol:
                socket.transport.close()
                raise ConnectionError(f"asked for protocol {self.protocol}, the welcome says {answered}")
        return socket

    async def connect(self, n: int, concurrency: int) -> dict:
        hellos = self.hellos(n)  # keys are minted before the clock starts
        limit = asyncio.Semaphore(concurrency)
        failed = 0

        async def one(hello: bytes | None) -> None:
            nonlocal failed
            async with limit:
                try:
                    self.sockets.append(await self.open(hello))
                except (OSError, ConnectionError, TimeoutError):
                    failed += 1

        cpu, start = time.process_time(), time.time()
        await asyncio.gather(*(one(hello) for hello in hellos))
        return {"t0": start, "t1": time.time(), "failed": failed, "cpu": time.process_time() - cpu}

    def reset(self) -> dict:
        for socket in self.sockets:
            socket.received.clear()
        self.cpu_mark = time.process_time()
        return {}

    async def collect(self, seqs: list[int], quiet: float, timeout: float) -> dict:
        """Wait until every socket has every seq (or nothing arrived for ``quiet`` s).

        A socket is done when it has a message per seq or its last message carries the last
        seq (a server sends a socket's signals in order; batches make fewer messages than
        seqs). Only each socket's newest message is parsed while waiting, once.
        """
        wanted = len(seqs)
        deadline, start = time.monotonic() + timeout, time.time()
        done: set[int] = set()
        checked: dict[int, int] = {}  # socket index -> messages it had when last looked at

        def finished(index: int, socket: Socket) -> bool:
            count = len(socket.received)
            if index in done or count >= wanted:
                done.add(index)
                return True
            if not count or checked.get(index) == count:
                return False
            checked[index] = count
            if any(kwargs.get("s") == seqs[-1] for kwargs in signals(socket.received[-1][1], self.socketio)):
                done.add(index)
                return True
            return False

        while time.monotonic() < deadline:
            if all(finished(index, socket) for index, socket in enumerate(self.sockets)):
                break
            if time.time() - max(self.last_receive, start) > quiet:
                break
            await asyncio.sleep(0.05)
        cpu = time.process_time() - getattr(self, "cpu_mark", 0.0)
        wanted_set = set(seqs)
        latencies: list[float] = []
        by_seq: dict[int, list[float]] = {}
        lost = duplicated = deliveries = 0
        size = 0.0
        lone_sizes: list[int] = []  # messages carrying exactly one signal: their payload bytes
        envelopes: list[int] = []  # ... less their kwargs' compact JSON
        first = last = None
        signal_messages = 0
        for socket in self.sockets:
            seen: set[int] = set()
            for received_at, payload in socket.received:
                inside = signals(payload, self.socketio)
                signal_messages += any(kwargs.get("s") in wanted_set for kwargs in inside)
                for kwargs in inside:
                    seq = kwargs.get("s")
                    if seq not in wanted_set:
                        continue
                    if seq in seen:
                        duplicated += 1
                        continue
                    seen.add(seq)
                    deliveries += 1
                    size += len(payload) / len(inside)  # a batch's bytes shared by its signals
                    if len(inside) == 1:
                        lone_sizes.append(len(payload))
                        envelopes.append(len(payload) - json_size(kwargs))
                    latency = round((received_at - kwargs["t"]) * 1000, 3)
                    latencies.append(latency)
                    by_seq.setdefault(seq, []).append(latency)
                    first = received_at if first is None else min(first, received_at)
                    last = received_at if last is None else max(last, received_at)
            lost += wanted - len(seen)
        return {
            "deliveries": deliveries,
            "bytes": size,  # websocket payload bytes of the deliveries (frame headers excluded)
            "signal_messages": signal_messages,  # websocket messages carrying deliveries
            "lone": len(lone_sizes),
            "lone_bytes": sum(lone_sizes),
            "envelope_bytes": sum(envelopes),
            "lost": lost,
            "duplicated": duplicated,
            "first": first,
            "last": last,
            "latencies_ms": latencies,
            # Per message: the first and the last socket's latency (the spread of one fan-out).
            "spread_ms": {s: (min(v), max(v)) for s, v in by_seq.items()},
            "cpu": cpu,
            "closed": self.lost,
        }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--keys", action="store_true", help="say hello with a window key")
    parser.add_argument("--socketio", action="store_true", help="speak Socket.IO 4 (Engine.IO v4)")
    parser.add_argument("--source", help="connect from this address (e.g. 127.0.0.2)")
    parser.add_argument("--protocol", type=int, choices=[1, 2], default=2, help="floorchannels protocol")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    client = Client(args.host, args.port, args.path, args.keys, args.socketio, args.source, args.protocol)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    while line := await reader.readline():
        command = json.loads(line)
        cmd = command.pop("cmd")
        if cmd == "connect":
            reply = await client.connect(command["n"], command.get("concurrency", 50))
        elif cmd == "reset":
            reply = client.reset()
        elif cmd == "collect":
            reply = await client.collect(command["seqs"], command["quiet"], command["timeout"])
        elif cmd == "exit":
            for socket in client.sockets:
                socket.transport.close()
            print(json.dumps({}), flush=True)
            return
        else:
            reply = {"error": f"unknown command {cmd}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
