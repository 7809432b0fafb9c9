"""Faults with real processes: Redis going away under load, SIGTERM, broken frames."""

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from asgiref.sync import sync_to_async

from tests.e2e.conftest import ROOT, Browserless, Redis, open_ws

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("layer", ["pubsub", "core"])
async def test_redis_outage_under_load(project_factory, layer, capsys):
    redis = Redis()
    try:
        project = project_factory(redis.url)
        project.env["REDIS_LAYER"] = layer
        server = project.daphne()
        windows = [await open_ws(Browserless(server)) for _ in range(3)]

        publisher = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.publisher", "120", "0.05"],
            cwd=ROOT,
            env=project.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        await asyncio.sleep(1.5)
        redis.stop()
        await asyncio.sleep(1.0)
        # Redis is down: HTTP is still served and sockets still answer pings.
        status = await sync_to_async(lambda: urllib.request.urlopen(server.http + "/").status)()
        assert status == 200
        await windows[0].connection.send(json.dumps({"type": "ping", "id": "p"}))
        early = [await windows[0].receive()]
        while early[-1]["type"] != "pong":
            early.append(await windows[0].receive())
        # A window connecting now cannot join its groups: it is told so (4500), not left deaf.
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        newcomer = await connect(server.ws)
        await newcomer.send(
            json.dumps({"type": "hello", "window_key": Browserless(server).page_key(), "protocol": 1})
        )
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(newcomer.recv(), 10)
        assert closed.value.rcvd.code == 4500
        await asyncio.sleep(1.5)
        redis.start()
        out, _ = await sync_to_async(publisher.communicate)(timeout=60)
        result = json.loads(out.strip().splitlines()[-1])
        assert result["failed"], "publishing while Redis was down must fail loudly"
        assert set(result["errors"]) <= {
            "ConnectionError",
            "ConnectionRefusedError",
            "TimeoutError",
            "OSError",
        }, result

        # Delivery resumes by itself, and every window is told it may have missed messages.
        await asyncio.sleep(2)
        await sync_to_async(project.manage)("floorchannels_call", "after.outage", "--broadcast")
        sent_at = dict(map(tuple, result["sent"]))
        report = []
        for index, window in enumerate(windows):
            frames = (early if index == 0 else []) + await window.signals(quiet=1.5)
            resyncs = [f for f in frames if f["type"] == "resync"]
            assert [f["reason"] for f in resyncs] == ["layer_outage"], frames[-5:]
            ticks = [f["kwargs"]["i"] for f in frames if f.get("signal") == "load.tick"]
            assert len(ticks) == len(set(ticks)), "no duplicates"
            assert [f["signal"] for f in frames if f.get("signal") not in (None, "load.tick")] == [
                "after.outage"
            ]
            missed = set(sent_at) - set(ticks)
            # Loss happens only inside the outage the resync frame announced.
            assert all(sent_at[i] <= resyncs[0]["at"] for i in missed), (missed, resyncs[0])
            report.append((len(ticks), len(missed)))
        with capsys.disabled():
            print(
                f"\n[{layer}] published {len(sent_at)} ok, {len(result['failed'])} refused with PublishError; "
                f"per window (received, missed inside the announced outage): {report}"
            )
        for window in windows:
            await window.close()
    finally:
        redis.stop()


async def test_sigterm_closes_sockets_with_going_away(project_factory):
    project = project_factory()
    server = project.daphne()
    windows = [await open_ws(Browserless(server)) for _ in range(2)]
    server.process.send_signal(signal.SIGTERM)
    from websockets.exceptions import ConnectionClosed

    for window in windows:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await window.receive(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4503
    assert server.process.wait(15) is not None  # and the server still stops


async def test_invalid_utf8_and_garbage_do_not_hurt_the_server(project_factory):
    project = project_factory()
    server = project.daphne()
    bystander = await open_ws(Browserless(server))

    def raw_bad_frame():
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(
            b"GET /ws/floorchannels/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert b"101" in sock.recv(4096)
        payload = b"\xff\xfe\xfd invalid utf-8"
        mask = b"\x01\x02\x03\x04"
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        sock.settimeout(5)
        try:  # the server fails the connection: a close frame (1007), EOF or a reset
            reply = sock.recv(4096)
        except ConnectionResetError:
            reply = b""
        sock.close()
        garbage = socket.create_connection(("127.0.0.1", server.port))
        garbage.sendall(b"\x00garbage that is not HTTP at all\xff" * 10)
        time.sleep(0.3)
        garbage.close()
        return reply

    reply = await sync_to_async(raw_bad_frame)()
    assert reply == b"" or (reply[0] == 0x88 and int.from_bytes(reply[2:4], "big") == 1007), reply
    assert (await bystander.call("demo.add", a=1, b=1))["result"] == 2
    status = await sync_to_async(lambda: urllib.request.urlopen(server.http + "/").status)()
    assert status == 200
    await bystander.close()
