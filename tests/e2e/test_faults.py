"""Faults with real processes: Redis going away under load, SIGTERM, broken frames."""

import asyncio
import json
import signal
import socket
import subprocess
import sys
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
        # Ticks are flowing before Redis goes away.
        early = await windows[0].through(lambda f: f.get("signal") == "load.tick" and f["kwargs"]["i"] >= 10)
        redis.stop()
        # Redis is down: HTTP is still served and sockets still answer pings.
        status = await sync_to_async(lambda: urllib.request.urlopen(server.http + "/").status)()
        assert status == 200
        await windows[0].connection.send(json.dumps({"type": "ping", "id": "p"}))
        early += await windows[0].through(lambda f: f["type"] == "pong")
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
        # Publishing fails while Redis is down (the publisher runs meanwhile, 20 a second).
        refused = await sync_to_async(subprocess.run)(
            [sys.executable, "manage.py", "floorchannels_call", "during.outage", "--broadcast"],
            cwd=ROOT,
            env=project.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode != 0, refused.stdout
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
        seen = [early] + [[] for _ in windows[1:]]
        for index, window in enumerate(windows):
            seen[index] += await window.through(lambda f: f["type"] == "resync", timeout=30)
        await sync_to_async(project.manage)("floorchannels_call", "after.outage", "--broadcast")
        sent_at = dict(map(tuple, result["sent"]))
        report = []
        for index, window in enumerate(windows):
            # Everything up to the marker published after the outage.
            frames = seen[index] + await window.through(lambda f: f.get("signal") == "after.outage")
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
        garbage.settimeout(5)
        try:  # the server answers (400) and hangs up: it has handled the garbage
            while garbage.recv(4096):
                pass
        except (ConnectionResetError, TimeoutError):
            pass
        garbage.close()
        return reply

    reply = await sync_to_async(raw_bad_frame)()
    assert reply == b"" or (reply[0] == 0x88 and int.from_bytes(reply[2:4], "big") == 1007), reply
    assert (await bystander.call("demo.add", a=1, b=1))["result"] == 2
    status = await sync_to_async(lambda: urllib.request.urlopen(server.http + "/").status)()
    assert status == 200
    await bystander.close()


async def test_a_malformed_layer_message_does_not_stop_delivery(project_factory, redis):
    """A message of a shape this release does not know (a rolling deploy changing the
    format) reaches the hub of a real daphne process through Redis: it is skipped, and
    the process goes on delivering."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from floorchannels.topics import BROADCAST_GROUP, layer_group

    project = project_factory(redis.url)
    server = project.daphne()
    window = await open_ws(Browserless(server))
    layer = RedisPubSubChannelLayer(hosts=[redis.url])
    try:
        for broken in (
            {"type": "fc.deliver", "id": "x", "group": BROADCAST_GROUP},  # no frame
            {"type": "fc.deliver", "v": 99, "id": "y", "group": BROADCAST_GROUP, "frame": "{}"},
            {"type": "fc.renamed_in_a_later_release", "group": BROADCAST_GROUP},
        ):
            await layer.group_send(layer_group(BROADCAST_GROUP), broken)
    finally:
        await layer.flush()
    await sync_to_async(project.manage)("floorchannels_call", "still.delivering", "--broadcast")
    frames = await window.through(lambda f: f.get("signal") == "still.delivering")
    assert [f["type"] for f in frames] == ["signal"], frames
    assert (await window.call("demo.add", a=2, b=3))["result"] == 5
    await window.close()


async def test_a_hub_that_could_not_start_is_started_by_the_next_connect(project_factory):
    """Redis is not up yet when the first window connects: it is closed with 4500; once
    Redis is up the next connect is served, and broadcasts reach it."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    redis = Redis()
    redis.stop()
    try:
        project = project_factory(redis.url)
        server = project.daphne()
        browser = Browserless(server)
        early = await connect(server.ws, additional_headers=browser.headers())
        await early.send(json.dumps({"type": "hello", "window_key": browser.page_key(), "protocol": 1}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(early.recv(), 30)
        assert closed.value.rcvd.code == 4500
        redis.start()
        window = await open_ws(browser)
        await sync_to_async(project.manage)("floorchannels_call", "served.now", "--broadcast")
        frames = await window.through(lambda f: f.get("signal") == "served.now")
        assert frames[-1]["signal"] == "served.now"
        await window.close()
    finally:
        redis.stop()
