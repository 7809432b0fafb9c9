"""floorchannels.servers: what each ASGI server does when a client stops reading.

The first tests serve tests/servers_probe_asgi.py with each real server and a client that
does not read: under daphne the flow control must pause and then resume once the client
reads; under the others the server's own send must stop completing. They fail when an
upgrade of a server changes either (daphne's internals are reached in servers.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from websockets.exceptions import ConnectionClosed

from floorchannels import servers
from floorchannels.servers import FlowControl
from tests import servers_probe_asgi
from tests.conftest import await_until
from tests.e2e.conftest import ROOT, free_port, stop

APP = "tests.servers_probe_asgi:application"
COMMANDS = {
    "daphne": lambda port: ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), APP],
    "uvicorn-websockets": lambda port: ["-m", "uvicorn", "--port", str(port), "--ws", "websockets", APP],
    "uvicorn-wsproto": lambda port: ["-m", "uvicorn", "--port", str(port), "--ws", "wsproto", APP],
    "uvicorn-websockets-sansio": lambda port: [
        "-m", "uvicorn", "--port", str(port), "--ws", "websockets-sansio", APP,
    ],
    "hypercorn": lambda port: ["-m", "hypercorn", "-b", f"127.0.0.1:{port}", APP],
    "granian": lambda port: ["-m", "granian", "--interface", "asgi", "--port", str(port), APP],
}  # fmt: skip
NEEDS = {"uvicorn-wsproto": "wsproto", "hypercorn": "hypercorn", "granian": "granian"}


def connect(port: int, deadline: float) -> socket.socket:
    while True:
        try:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(5)
            sock.connect(("127.0.0.1", port))
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def get_report(port: int, done: callable, timeout: float = 30) -> dict:
    """Poll the app's report (over HTTP: the websocket is not being read) until ``done``."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/report", timeout=5) as response:
            report = json.loads(response.read())
        if done(report) or "error" in report:
            return report
        assert time.monotonic() < deadline, f"no report in {timeout} s: {report}"
        time.sleep(0.05)


def upgrade(port: int, path: bytes) -> socket.socket:
    """A socket connected to ``port`` and upgraded to a websocket at ``path``."""
    sock = connect(port, time.monotonic() + 20)
    sock.sendall(
        b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


@contextlib.contextmanager
def serving(server: str, **env: str) -> Iterator[SimpleNamespace]:
    """The probe app under ``server`` on a free port, once it listens: ``.port``; after the
    block, the server stopped, its output (stdout and stderr) in ``.output``, which must
    show no traceback."""
    served = SimpleNamespace(port=free_port(), output="")
    process = subprocess.Popen(
        [sys.executable, *COMMANDS[server](served.port)],
        cwd=ROOT,
        env=dict(os.environ, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        connect(served.port, time.monotonic() + 20).close()
        yield served
    finally:
        stop(process)
        served.output = process.stdout.read().decode(errors="replace")
        process.stdout.close()
    assert "Traceback" not in served.output, served.output


def drain_in_background(sock: socket.socket) -> threading.Thread:
    def read() -> None:
        try:
            while sock.recv(1 << 20):
                pass
        except OSError:
            pass

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("server", list(COMMANDS))
def test_what_each_server_does_when_the_client_stops_reading(server):
    if server in NEEDS:
        pytest.importorskip(NEEDS[server])
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, *COMMANDS[server](port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        sock = upgrade(port, b"/ws")
        sock.sendall(bytes([0x81, 0x82]) + b"\x00\x00\x00\x00" + b"go")  # masked "go"; then no reads
        report = get_report(port, lambda r: "flow" in r)
        limit = 16 * 1024 * 1024
        print(f"{server}: {report}")  # shown with -s: what docs/deployment.md quotes
        if server == "daphne":
            # twisted buffers without limit; the producer registered on its transport is
            # paused past its high-water mark, and resumed once the client reads.
            assert report.get("flow") is True and report["paused_after"] < limit, report
            drain_in_background(sock)
            assert get_report(port, lambda r: "resumed" in r).get("resumed") is True
        else:
            assert report.get("flow") is False and report.get("suspended_after", limit) < limit, report
        sock.close()
    finally:
        stop(process)
        errors = process.stderr.read().decode(errors="replace")
        process.stderr.close()
    assert "Traceback" not in errors, errors


def test_a_daphne_send_hidden_by_a_middleware_is_reported(tmp_path):
    port = free_port()
    log = tmp_path / "daphne.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, *COMMANDS["daphne"](port)], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            sock = connect(port, time.monotonic() + 20)
            sock.sendall(
                b"GET /wrapped HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: "
                + base64.b64encode(os.urandom(16))
                + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            assert get_report(port, lambda r: "wrapped_flow" in r) == {"wrapped_flow": False}
            sock.close()
        finally:
            stop(process)
    assert "MAX_BUFFERED_BYTES is not enforced" in log.read_text()


def read_frames(sock: socket.socket) -> tuple[list[str], int]:
    """The text frames a server sends until its close frame, and the close code."""
    data, frames = b"", []
    while True:
        while len(data) < 2 or len(data) < _frame_end(data):
            chunk = sock.recv(1 << 16)
            assert chunk, "the connection ended before a close frame"
            data += chunk
        end = _frame_end(data)
        opcode, payload = data[0] & 0x0F, data[_header_size(data) : end]
        data = data[end:]
        if opcode == 8:
            return frames, int.from_bytes(payload[:2], "big")
        frames.append(payload.decode())


def _header_size(data: bytes) -> int:
    return {126: 4, 127: 10}.get(data[1] & 0x7F, 2)


def _frame_end(data: bytes) -> int:
    if len(data) < 10:
        return 1 << 30 if (data[1] & 0x7F) >= 126 else 2 + (data[1] & 0x7F)
    length = data[1] & 0x7F
    if length == 126:
        length = int.from_bytes(data[2:4], "big")
    elif length == 127:
        length = int.from_bytes(data[2:10], "big")
    return _header_size(data) + length


def test_daphne_sends_a_turn_of_frames_together_and_in_order_before_the_close():
    """Under daphne a socket's writes of one loop turn leave together after the turn
    (servers._TurnWriter): every frame arrives, in order, and the close frame after them."""
    with serving("daphne") as served:
        sock = upgrade(served.port, b"/burst")
        frames, code = read_frames(sock)
        assert [int(f.split(":")[0]) for f in frames] == list(range(servers_probe_asgi.BURST))
        assert code == 4000
        report = get_report(served.port, lambda r: "writer" in r)
        assert (report["writer"], report["transport"]) == ("_TurnWriter", "TurnServer")
        sock.close()


@pytest.mark.parametrize("server", ["daphne", "uvicorn-websockets-sansio"])
def test_text_frames_built_by_floorchannels_read_as_the_servers_own(server):
    """Under daphne a text message is framed by floorchannels (servers._TurnWriter.send_text)
    rather than autobahn: a real websocket client reads every size the same as the
    server's own frames, in order. Other servers send through their own send."""
    from websockets.sync.client import connect as ws_connect

    with serving(server) as served:
        with ws_connect(f"ws://127.0.0.1:{served.port}/texts", compression=None, max_size=None) as ws:
            received = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    received.append(ws.recv(timeout=20))
        assert closed.value.rcvd.code == 4000
        if server == "daphne":  # twice each: framed here, then by daphne; "" by neither
            assert received == [text for text in servers_probe_asgi.TEXTS for _ in (1, 2) if text]
        else:
            assert received == servers_probe_asgi.TEXTS
        # daphne sends nothing for an empty text; neither does floorchannels' framing.
        expected = len(servers_probe_asgi.TEXTS) - 1 if server == "daphne" else 0
        assert get_report(served.port, lambda r: "framed_here" in r)["framed_here"] == expected


@pytest.mark.parametrize("server", ["daphne", "uvicorn-websockets-sansio"])
def test_an_open_socket_keeps_nothing_of_its_handshake(server):
    """Once a socket is open, the request it was opened with (here with a 6 KB cookie)
    is not kept by the server. daphne: not by autobahn, not in daphne's ``request`` (of
    which daphne's access log still has the path), and the HTTP channel that upgraded it
    is freed without a garbage collection (the server runs with the collector off).
    uvicorn: not its protocol's request and response."""
    from websockets.sync.client import connect as ws_connect

    cookie = "session=" + "c" * 6000
    with serving(server, PROBE_GC="0") as served:
        url = f"ws://127.0.0.1:{served.port}/handshake?q=1"
        with ws_connect(url, additional_headers={"Cookie": cookie}):
            if server == "daphne":
                report = get_report(served.port, lambda r: r.get("channel_freed"))
                assert report["channel_freed"]
            else:
                report = get_report(served.port, lambda r: "handshake" in r)
            assert report["handshake"] == {"kept": [], "path": "/handshake"}
    if server == "daphne":
        assert 'WSDISCONNECT /handshake"' in served.output, served.output


def test_autobahn_and_daphne_read_the_handshake_state_only_during_the_handshake():
    """What servers._release_handshake lets go of is read by autobahn's server side only
    while it processes the handshake, and of daphne's ``request`` only the path is read
    after ``onConnect``; an upgrade that reads them later fails here."""
    import inspect
    import re

    from daphne.ws_protocol import WebSocketProtocol

    handshake = {"processHandshake", "succeedHandshake", "onConnect"}
    for cls in WebSocketProtocol.__mro__[:-1]:
        for name, member in vars(cls).items():
            function = getattr(member, "__func__", member)
            if not inspect.isfunction(function) or name in handshake:
                continue
            source = inspect.getsource(function)
            for attribute in servers._HANDSHAKE_STATE:
                assert f"self.{attribute}" not in source, (cls, name, attribute)
            assert set(re.findall(r"self\.request\.(\w+)", source)) <= {"path"}, (cls, name)
    assert "self.request = request" in inspect.getsource(WebSocketProtocol.onConnect)
    # daphne leaves the upgrading channel's request list as it was.
    from daphne.http_protocol import WebRequest

    assert "self.server.protocol_disconnected(self)" in inspect.getsource(WebRequest.process)


def test_uvicorn_reads_its_handshake_request_and_response_only_until_it_completes():
    """servers._uvicorn_sansio_opened drops uvicorn's ``request`` and ``response`` once the
    handshake is complete: uvicorn reads them only in ``handle_connect`` and, in ``send``,
    before it marks the handshake complete. An upgrade that reads them later fails here."""
    import inspect
    import re

    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    for name, member in vars(WebSocketsSansIOProtocol).items():
        if not inspect.isfunction(member) or name in ("handle_connect", "send"):
            continue
        assert not re.search(r"self\.(request|response)\b", inspect.getsource(member)), name
    send = inspect.getsource(WebSocketsSansIOProtocol.send)
    guard = send.index("if not self.handshake_complete")
    complete = send.index("self.handshake_complete = True")
    uses = [m.start() for m in re.finditer(r"self\.(request|response)\b", send)]
    assert uses and all(guard < use < send.index("elif", complete) for use in uses)
    assert servers._is_uvicorn_sansio(WebSocketsSansIOProtocol.__new__(WebSocketsSansIOProtocol).send)


@pytest.mark.parametrize(
    "option",
    [
        {"_perMessageCompress": object()},
        {"trackedTimings": object()},
        {"logFrames": True},
        {"maskServerFrames": True},
        {"autoFragmentSize": 1024},
        {"send_state": 1},
        {"state": 4},  # closing
    ],
)
def test_a_socket_autobahn_would_frame_differently_uses_daphnes_send(option):
    """Compression, fragmenting, masking, frame logging or a socket that is not open: the
    text goes through daphne's send (send_text says False and writes nothing)."""
    from autobahn.websocket.protocol import WebSocketProtocol

    protocol = SimpleNamespace(
        STATE_OPEN=WebSocketProtocol.STATE_OPEN,
        SEND_STATE_GROUND=WebSocketProtocol.SEND_STATE_GROUND,
        state=WebSocketProtocol.STATE_OPEN,
        send_state=WebSocketProtocol.SEND_STATE_GROUND,
        _perMessageCompress=None,
        trackedTimings=None,
        logFrames=False,
        maskServerFrames=False,
        autoFragmentSize=0,
        maxMessagePayloadSize=0,
    )
    writes = []

    class Recording(servers._TurnWriter):
        __slots__ = ()

        def write(self, data):
            writes.append(data)

    writer = Recording(SimpleNamespace(), protocol)
    assert writer.send_text("plain")
    assert writes == [b"\x81\x05plain"]
    vars(protocol).update(option)
    writer.plain = None
    assert not writer.send_text("not plain")
    assert writes == [b"\x81\x05plain"]


def test_a_fan_out_frames_its_text_once():
    """Every socket of a fan-out is written the same text object: it is framed once."""
    text = "".join(['["fan.out",{}]'])  # a text built at run time, as a message's is
    frame = servers._text_frame(text)
    assert servers._text_frame(text) is frame
    assert servers._text_frame(text + " ") is not frame
    assert servers._text_frame(text) == frame  # an equal text, framed again the same way


def test_the_twisted_internals_the_turn_writer_uses_are_there():
    """servers._TurnWriter relies on these; an upgrade of twisted or autobahn that changes
    them fails here."""
    import inspect

    from autobahn.websocket.protocol import WebSocketProtocol
    from twisted.internet import abstract, tcp

    for name in ("writeSomeData", "loseConnection", "write", "bufferSize"):
        assert hasattr(tcp.Server, name), name
    descriptor = inspect.getsource(abstract.FileDescriptor)
    for name in ("self.dataBuffer", "self._tempDataBuffer", "self.connected", "self.disconnecting"):
        assert name in descriptor, name
    # The transport finds its writer as its producer, which twisted forgets (after telling
    # it) when the connection is lost.
    lost = inspect.getsource(abstract.FileDescriptor.connectionLost)
    assert "self.producer.stopProducing()" in lost and "self.producer = None" in lost
    assert "self.transport.write(" in inspect.getsource(WebSocketProtocol.sendData)
    # What _TurnWriter.send_text checks before framing a text message itself.
    send = inspect.getsource(WebSocketProtocol.sendMessage) + inspect.getsource(WebSocketProtocol.sendFrame)
    for name in (
        "_perMessageCompress",
        "trackedTimings",
        "autoFragmentSize",
        "maskServerFrames",
        "logFrames",
    ):
        assert f"self.{name}" in send, name
    for name in ("maskServerFrames", "autoFragmentSize", "logFrames", "maxMessagePayloadSize"):
        assert name in WebSocketProtocol.CONFIG_ATTRS_COMMON + WebSocketProtocol.CONFIG_ATTRS_SERVER, name
    # A transport's class can be switched to the subclass (same layout).
    transport = object.__new__(tcp.Server)
    transport.__class__ = servers._turn_server_class()
    assert isinstance(transport, tcp.Server)


# FlowControl ------------------------------------------------------------------------------


async def test_flow_control_pauses_and_wakes_every_waiter():
    flow = FlowControl()
    await asyncio.wait_for(flow.resumed(), 1)  # not paused: returns at once
    flow.pauseProducing()
    waiters = [asyncio.ensure_future(flow.resumed()) for _ in range(3)]
    await asyncio.sleep(0)
    assert flow.paused and not any(w.done() for w in waiters)
    waiters[0].cancel()  # one window closing does not strand the others
    await asyncio.sleep(0)
    flow.resumeProducing()
    await asyncio.wait_for(asyncio.gather(*waiters[1:]), 1)
    assert not flow.paused


async def test_a_lost_connection_releases_the_writer():
    flow = FlowControl()
    flow.pauseProducing()
    waiter = asyncio.ensure_future(flow.resumed())
    await asyncio.sleep(0)
    flow.stopProducing()
    await asyncio.wait_for(waiter, 1)


async def test_pause_again_before_the_waiter_runs():
    flow = FlowControl()
    flow.pauseProducing()
    waiter = asyncio.ensure_future(flow.resumed())
    await asyncio.sleep(0)
    flow.resumeProducing()
    flow.pauseProducing()  # paused again before the waiter ran: it keeps waiting
    # It runs, sees the pause and waits on a new future (or, wrongly, returns).
    await await_until(lambda: flow._waiter is not None or waiter.done(), what="the waiter to run")
    assert not waiter.done()
    flow.resumeProducing()
    await asyncio.wait_for(waiter, 1)


def test_flow_control_is_small():
    assert not hasattr(FlowControl(), "__dict__")


async def test_servers_whose_send_waits_get_none():
    async def server_send(message):
        pass

    class Wrapper:  # Channels' InstanceSessionWrapper: send is a method holding real_send
        real_send = staticmethod(server_send)

        async def send(self, message):
            pass

    send = server_send

    assert servers.flow_control(send) is None
    assert servers.flow_control(Wrapper().send) is None
    assert servers._unwrap(Wrapper().send) is send
