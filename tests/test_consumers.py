"""The websocket consumer, through the protocol a browser speaks (docs/protocol.md)."""

import asyncio
import json
import logging
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.test import override_settings

from floorchannels import BROADCAST, USER, WINDOW, acall, protocol
from floorchannels.history import alias, with_position
from floorchannels.hub import get_hub
from floorchannels.messages import DELIVER
from floorchannels.protocol import CloseCode
from floorchannels.topics import BROADCAST_GROUP, group_for_topic
from floorchannels.windows import ExpiredKey, load_key
from tests.conftest import (
    await_until,
    connect_raw,
    expect_close,
    make_key,
    nothing_before_marker,
    open_window,
    session_headers,
    v2_frames,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice():
    return User.objects.create_user("alice", password="alice-pass")


@pytest.fixture
def bob():
    return User.objects.create_user("bob", password="bob-pass")


# Hello and keys --------------------------------------------------------------------------


async def test_anonymous_window_says_hello_and_is_welcomed():
    key = make_key()
    window = await open_window(key)
    assert window.welcome["protocol"] == 1
    assert len(window.welcome["window_id"]) == 40
    assert window.welcome["heartbeat"] > 0
    await window.close()


async def test_signed_in_window_is_welcomed_with_its_session(alice):
    headers = await sync_to_async(session_headers)(alice)
    window = await open_window(make_key(alice), headers)
    reply = await window.call("t.auth")
    assert reply == {"type": "reply", "id": 1, "ok": True, "result": "alice"}
    await window.close()


async def test_two_renders_are_two_windows():
    first, second = await open_window(make_key()), await open_window(make_key())
    assert first.welcome["window_id"] != second.welcome["window_id"]
    await first.close()
    await second.close()


async def test_key_of_another_user_is_refused(alice, bob):
    headers = await sync_to_async(session_headers)(bob)
    ws = await connect_raw(headers)
    await ws.send_json_to({"type": "hello", "window_key": make_key(alice), "protocol": 1})
    assert await expect_close(ws) == CloseCode.KEY_REFUSED


async def test_user_key_without_session_is_refused(alice):
    ws = await connect_raw()
    await ws.send_json_to({"type": "hello", "window_key": make_key(alice), "protocol": 1})
    assert await expect_close(ws) == CloseCode.KEY_REFUSED


async def test_tampered_key_is_refused():
    key = make_key()
    payload, rest = key.split(":", 1)
    forged = ("a" if payload[-1] != "a" else "b").join([payload[:-1], ""]) + ":" + rest
    for bad in [forged, key + "x", "not-a-key", "", 12]:
        ws = await connect_raw()
        await ws.send_json_to({"type": "hello", "window_key": bad, "protocol": 1})
        assert await expect_close(ws) == CloseCode.INVALID_KEY, bad


async def test_key_signed_with_another_secret_is_refused():
    with override_settings(SECRET_KEY="another-secret-key-0123456789-abcdefghijklmnopqrstuv"):
        key = make_key()
    ws = await connect_raw()
    await ws.send_json_to({"type": "hello", "window_key": key, "protocol": 1})
    assert await expect_close(ws) == CloseCode.INVALID_KEY


async def test_key_signed_with_a_rotated_secret_is_accepted_while_it_is_a_fallback():
    old = "old-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
    with override_settings(SECRET_KEY=old):
        key = make_key()
    with override_settings(SECRET_KEY_FALLBACKS=[old]):
        ws = await connect_raw()
        await ws.send_json_to({"type": "hello", "window_key": key, "protocol": 1})
        assert (await ws.receive_json_from())["type"] == "welcome"
        await ws.disconnect()
    ws = await connect_raw()  # the fallback retired: the same key is refused
    await ws.send_json_to({"type": "hello", "window_key": key, "protocol": 1})
    assert await expect_close(ws) == CloseCode.INVALID_KEY


async def test_expired_key_is_refused():
    key = make_key()
    with override_settings(FLOORCHANNELS={"WINDOW_KEY_MAX_AGE": 1}):

        def expired() -> bool:
            try:
                load_key(key)
            except ExpiredKey:
                return True
            return False

        # The key's age is what is under test: poll the clock until it is past the maximum.
        await await_until(expired, what="the key to be older than WINDOW_KEY_MAX_AGE")
        ws = await connect_raw()
        await ws.send_json_to({"type": "hello", "window_key": key, "protocol": 1})
        assert await expect_close(ws) == CloseCode.EXPIRED_KEY


async def test_key_is_refused_after_logout(alice):
    headers = await sync_to_async(session_headers)(alice)
    key = make_key(alice)
    window = await open_window(key, headers)
    await window.close()

    def logout():
        from django.contrib.sessions.models import Session

        Session.objects.all().delete()

    await sync_to_async(logout)()
    ws = await connect_raw(headers)
    await ws.send_json_to({"type": "hello", "window_key": key, "protocol": 1})
    assert await expect_close(ws) == CloseCode.KEY_REFUSED


async def test_key_is_refused_after_password_change(alice):
    headers = await sync_to_async(session_headers)(alice)
    key = make_key(alice)

    def change_password():
        alice.set_password("new-password")
        alice.save()

    await sync_to_async(change_password)()
    ws = await connect_raw(headers)
    await ws.send_json_to({"type": "hello", "window_key": key, "protocol": 1})
    assert await expect_close(ws) == CloseCode.KEY_REFUSED


async def test_key_is_refused_for_a_deactivated_user(alice):
    headers = await sync_to_async(session_headers)(alice)
    key = make_key(alice)
    alice.is_active = False
    await sync_to_async(alice.save)()
    ws = await connect_raw(headers)
    await ws.send_json_to({"type": "hello", "window_key": key, "protocol": 1})
    assert await expect_close(ws) == CloseCode.KEY_REFUSED


async def test_key_never_appears_in_logs(alice, caplog):
    caplog.set_level(logging.DEBUG)
    key = make_key(alice)
    ws = await connect_raw()
    await ws.send_json_to({"type": "hello", "window_key": key, "protocol": 1})
    await expect_close(ws)
    assert "Refused a window" in caplog.text
    assert key not in caplog.text and key.split(":")[0] not in caplog.text


async def test_first_frame_must_be_hello():
    for first in ['{"type": "call", "id": 1, "signal": "t.echo"}', "not json", "[]"]:
        ws = await connect_raw()
        await ws.send_to(text_data=first)
        assert await expect_close(ws) == CloseCode.BAD_HELLO


async def test_hello_timeout_closes_the_socket():
    with override_settings(FLOORCHANNELS={"HELLO_TIMEOUT": 0.2}):
        ws = await connect_raw()
        assert await expect_close(ws) == CloseCode.HELLO_TIMEOUT


async def test_foreign_origin_is_refused_at_handshake():
    from channels.testing import WebsocketCommunicator

    from tests.asgi import application

    ws = WebsocketCommunicator(
        application, "/ws/floorchannels/", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await ws.connect()
    assert not connected
    ws = WebsocketCommunicator(application, "/ws/floorchannels/", headers=[(b"origin", b"http://testserver")])
    connected, _ = await ws.connect()
    assert connected
    await ws.disconnect()


async def test_key_is_refreshed_over_the_socket():
    with override_settings(FLOORCHANNELS={"WINDOW_KEY_MAX_AGE": 10, "WINDOW_KEY_REFRESH_AFTER": 0.02}):
        window = await open_window(make_key())
        frame = await window.receive(timeout=3)
        assert frame["type"] == "refresh"
        assert frame["key_expires"] > window.welcome["key_expires"] - 0.5
        # The fresh key opens the same window.
        again = await open_window(frame["window_key"])
        assert again.welcome["window_id"] == window.welcome["window_id"]
        await window.close()
        await again.close()


# Calls -----------------------------------------------------------------------------------


async def test_call_gets_its_result():
    window = await open_window(make_key())
    assert (await window.call("t.add", a=2, b=3))["result"] == 5
    await window.close()


async def test_unknown_signal():
    window = await open_window(make_key())
    reply = await window.call("t.nope")
    assert reply["ok"] is False and reply["error"]["code"] == "unknown_signal"
    await window.close()


async def test_server_side_signals_are_forbidden_to_browsers():
    window = await open_window(make_key())
    reply = await window.call("t.server_only", value=1)
    assert reply["error"]["code"] == "forbidden"
    from tests.testapp.signals import ran

    assert ran == []
    await window.close()


@pytest.mark.parametrize(
    ("signal", "flags", "allowed"),
    [
        ("t.auth", {}, True),
        ("t.staff", {}, False),
        ("t.staff", {"is_staff": True}, True),
        ("t.superuser", {"is_staff": True}, False),
        ("t.superuser", {"is_superuser": True}, True),
        ("t.perm", {}, False),
        ("t.perm", {"perm": True}, True),
    ],
)
async def test_permissions_of_signed_in_users(signal, flags, allowed):
    def make_user():
        user = User.objects.create_user("carol", password="x", is_staff=flags.get("is_staff", False))
        user.is_superuser = flags.get("is_superuser", False)
        user.save()
        if flags.get("perm"):
            user.user_permissions.add(Permission.objects.get(codename="view_user"))
        return user, session_headers(user)

    user, headers = await sync_to_async(make_user)()
    window = await open_window(make_key(user), headers)
    reply = await window.call(signal)
    assert reply["ok"] is allowed, reply
    if not allowed:
        assert reply["error"]["code"] == "forbidden"
    await window.close()


async def test_anonymous_windows_fail_user_permissions():
    window = await open_window(make_key())
    for signal in ["t.auth", "t.staff", "t.superuser", "t.perm"]:
        assert (await window.call(signal))["error"]["code"] == "forbidden"
    await window.close()


async def test_callable_permission_sees_the_kwargs():
    window = await open_window(make_key())
    assert (await window.call("t.custom", x=1))["result"] == 1
    assert (await window.call("t.custom", x=2))["error"]["code"] == "forbidden"
    await window.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "Missing argument 'a'"),
        ({"a": "2"}, "Argument 'a' must be an integer"),
        ({"a": True}, "Argument 'a' must be an integer"),
        ({"a": 1.5}, "Argument 'a' must be an integer"),
        ({"a": 1, "c": 3}, "Unexpected argument 'c'"),
    ],
)
async def test_invalid_arguments(kwargs, message):
    window = await open_window(make_key())
    reply = await window.call("t.add", **kwargs)
    assert reply["error"]["code"] == "invalid_arguments"
    assert message in reply["error"]["message"]
    await window.close()


async def test_a_call_that_cannot_be_queued_is_a_server_error_with_one_warning(monkeypatch, caplog):
    """A full queue or Redis down (PublishError from enqueue): the browser is told, the log
    gets one line, not a traceback per call."""
    from floorchannels import consumers
    from floorchannels.dispatch import PublishError

    async def full(*args, **kwargs):
        raise PublishError("Queue 'tests' holds QUEUE_MAX_LENGTH calls")

    monkeypatch.setattr(consumers, "enqueue", full)
    window = await open_window(make_key())
    reply = await window.call("t.queued")
    assert reply["error"] == {"code": "server_error", "message": "The signal could not be queued."}
    [record] = [r for r in caplog.records if "could not be queued" in r.getMessage()]
    assert record.levelname == "WARNING" and record.exc_info is None
    assert "QUEUE_MAX_LENGTH" in record.getMessage()
    await window.close()


async def test_handler_error_is_logged_never_sent(caplog):
    window = await open_window(make_key())
    reply = await window.call("t.boom")
    assert reply["error"] == {"code": "server_error", "message": "The signal failed on the server."}
    assert "secret internals" not in json.dumps(reply)
    assert "secret internals" in caplog.text  # the traceback is in the server log
    # The socket is still usable.
    assert (await window.call("t.add", a=1))["result"] == 1
    await window.close()


async def test_result_that_is_not_json_is_a_server_error():
    window = await open_window(make_key())
    assert (await window.call("t.bad_result"))["error"]["code"] == "server_error"
    await window.close()


async def test_slow_handler_times_out_and_does_not_block_other_calls():
    with override_settings(FLOORCHANNELS={"CALL_TIMEOUT": 0.3}):
        window = await open_window(make_key())
        await window.ws.send_json_to(
            {"type": "call", "id": "slow", "signal": "t.slow", "kwargs": {"seconds": 5}}
        )
        await window.ws.send_json_to({"type": "call", "id": "fast", "signal": "t.add", "kwargs": {"a": 1}})
        first = await window.receive()
        second = await window.receive()
        assert first["id"] == "fast" and first["result"] == 1
        assert second["id"] == "slow" and second["error"]["code"] == "timeout"
        await window.close()


async def test_several_handlers_answer_with_a_list():
    window = await open_window(make_key())
    assert (await window.call("t.multi"))["result"] == [1, 2]
    await window.close()


async def test_handler_receives_the_window():
    window = await open_window(make_key())
    result = (await window.call("t.echo", x=1))["result"]
    assert result == {"kwargs": {"x": 1}, "window_id": window.welcome["window_id"], "user": ""}
    await window.close()


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        '"a string"',
        "{}",
        '{"type": 5}',
        '{"type": "teleport"}',
        '{"type": "call", "signal": "t.add"}',
        '{"type": "call", "id": true, "signal": "t.add"}',
        '{"type": "hello", "window_key": "x"}',
    ],
)
async def test_malformed_frames_get_an_error_and_the_socket_stays_usable(frame):
    window = await open_window(make_key())
    await window.ws.send_to(text_data=frame)
    error = await window.receive()
    assert error["type"] == "error" and error["code"] == "invalid_frame"
    assert (await window.call("t.add", a=4))["result"] == 4
    await window.close()


async def test_malformed_call_with_an_id_gets_a_reply():
    window = await open_window(make_key())
    await window.ws.send_json_to({"type": "call", "id": 9, "signal": "t.add", "kwargs": [1]})
    reply = await window.receive()
    assert reply["type"] == "reply" and reply["id"] == 9 and reply["error"]["code"] == "invalid_frame"
    await window.close()


async def test_binary_frames_are_refused():
    window = await open_window(make_key())
    await window.ws.send_to(bytes_data=b"\x00\x01")
    assert (await window.receive())["code"] == "invalid_frame"
    await window.close()


async def test_ping_pong():
    window = await open_window(make_key())
    await window.ws.send_json_to({"type": "ping", "id": 7})
    assert await window.receive() == {"type": "pong", "id": 7}
    await window.close()


# Signals to windows ----------------------------------------------------------------------


@pytest.fixture(params=[0, 1, 256], ids=["a-layer-group-each", "all-in-one-shard", "256-shards"])
def private_shards(request, settings):
    """Window and user groups on their own layer groups, all on one, or spread over 256:
    whatever the layer carries, each window gets exactly what is meant for it."""
    settings.FLOORCHANNELS = {**settings.FLOORCHANNELS, "PRIVATE_GROUP_SHARDS": request.param}
    return request.param


async def test_window_user_and_broadcast_targets(alice, bob, private_shards):
    alice_headers = await sync_to_async(session_headers)(alice)
    bob_headers = await sync_to_async(session_headers)(bob)
    a1 = await open_window(make_key(alice), alice_headers)
    a2 = await open_window(make_key(alice), alice_headers)
    b1 = await open_window(make_key(bob), bob_headers)
    anon = await open_window(make_key())

    a1_info = load_key(make_key(alice))  # any window of alice's carries her pk
    await acall("hello.user", USER, window=a1_info, kwargs={"n": 1})
    assert (await a1.receive())["kwargs"] == {"n": 1}
    assert (await a2.receive())["signal"] == "hello.user"
    await nothing_before_marker(a1, a2, b1, anon)

    await acall("hello.user", USER(bob), kwargs={"n": 2})
    assert (await b1.receive())["kwargs"] == {"n": 2}
    await nothing_before_marker(a1, a2, b1, anon)

    await acall("hello.all", BROADCAST, kwargs={})
    for window in (a1, a2, b1, anon):
        assert (await window.receive())["signal"] == "hello.all"

    target = load_key(make_key())
    target.window_id = a2.welcome["window_id"]
    await acall("hello.window", WINDOW, window=target)
    assert (await a2.receive())["signal"] == "hello.window"
    await nothing_before_marker(a1, a2, b1, anon)
    for window in (a1, a2, b1, anon):
        await window.close()


async def test_one_copy_per_window_through_several_groups(alice, private_shards):
    headers = await sync_to_async(session_headers)(alice)
    a1 = await open_window(make_key(alice, topics=["room"]), headers)
    a2 = await open_window(make_key(alice), headers)

    info = load_key(make_key(alice))
    info.window_id = a1.welcome["window_id"]
    message_id = await acall("many", [WINDOW, USER, BROADCAST, "room"], window=info)
    first = await a1.receive()
    assert first["id"] == message_id
    assert (await a2.receive())["id"] == message_id
    await nothing_before_marker(a1, a2)  # no second copy through another group
    await a1.close()
    await a2.close()


async def test_topics_reach_only_granted_windows():
    granted = await open_window(make_key(topics=[("room", 1)]))
    other = await open_window(make_key(topics=[("room", 2)]))
    await acall("room.news", ("room", 1), kwargs={"text": "hi"})
    frame = await granted.receive()
    assert frame == {
        "type": "signal",
        "signal": "room.news",
        "kwargs": {"text": "hi"},
        "id": frame["id"],
        # Its position in the topic's history, for replay after a reconnect.
        "g": alias(group_for_topic(("room", 1))),
        "seq": "1-0",
        "e": frame["e"],
    }
    await nothing_before_marker(granted, other)
    await granted.close()
    await other.close()


async def test_no_frame_from_a_browser_reaches_another_browser():
    sender = await open_window(make_key(topics=["room"]))
    receiver = await open_window(make_key(topics=["room"]))
    attempts = [
        {"type": "call", "id": 1, "signal": "room.news", "kwargs": {}},
        {"type": "signal", "signal": "room.news", "kwargs": {}},
        {"type": "call", "id": 2, "signal": "fc.notify", "kwargs": {"message": "x"}},
    ]
    for frame in attempts:
        await sender.ws.send_json_to(frame)
        await sender.receive()
    await nothing_before_marker(sender, receiver)
    await sender.close()
    await receiver.close()


async def test_closed_window_leaves_its_groups(private_shards):
    window = await open_window(make_key(topics=["room"]))
    await window.close()
    from floorchannels.hub import get_hub

    hub = await get_hub()

    def layer_groups() -> set[str]:
        return {group for group, channels in hub.layer.groups.items() if hub.channel_name in channels}

    # The sweep runs every 0.2 s in the test settings.
    await await_until(lambda: not any(group.startswith("fc.w.") for group in hub.groups), what="the sweep")
    # Nor does the hub stay in the layer groups that carried them.
    await await_until(lambda: layer_groups() == {hub.probe_group}, what="the hub to leave the layer groups")


# Slow clients ----------------------------------------------------------------------------


class StalledServer:
    """An ASGI server side whose client stops reading after the welcome: from then on
    each send waits, as uvicorn's does while its transport is full."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.frames: list[dict] = []
        self.closed = asyncio.get_running_loop().create_future()
        self.stalled = False

    async def receive(self) -> dict:
        return await self.inbox.get()

    async def send(self, message: dict) -> None:
        if message["type"] == "websocket.send":
            if self.stalled:
                await asyncio.Event().wait()  # never drains
            self.frames.append(json.loads(message["text"]))
        elif message["type"] == "websocket.close" and not self.closed.done():
            self.closed.set_result(message["code"])


async def test_a_client_that_stops_reading_is_closed_and_holds_up_nobody(settings, caplog):
    """Its frames wait in a bounded outbox, written by a task of its own, so the fan-out
    goes on to the other windows; past MAX_BUFFERED_BYTES it is closed with 4507."""
    from floorchannels import metrics
    from floorchannels.consumers import SignalConsumer

    settings.FLOORCHANNELS = {**settings.FLOORCHANNELS, "MAX_BUFFERED_BYTES": 64 * 1024}
    server = StalledServer()
    scope = {"type": "websocket", "path": "/ws/floorchannels/", "headers": [], "client": ("127.0.0.1", 9)}
    app = asyncio.ensure_future(SignalConsumer.as_asgi()(scope, server.receive, server.send))
    await server.inbox.put({"type": "websocket.connect"})
    await server.inbox.put(
        {
            "type": "websocket.receive",
            "text": json.dumps({"type": "hello", "window_key": make_key(), "protocol": 1}),
        }
    )
    reader = await open_window(make_key())
    await await_until(lambda: server.frames, 5, "the welcome")
    assert server.frames[0]["type"] == "welcome"
    server.stalled = True
    payload = "x" * 1024
    for n in range(200):  # 200 KiB for a 64 KiB allowance
        await acall("bulk", BROADCAST, kwargs={"n": n, "payload": payload})
    received = [(await reader.receive())["kwargs"]["n"] for _ in range(200)]
    assert received == list(range(200))
    assert await asyncio.wait_for(server.closed, 5) == CloseCode.SLOW_CLIENT
    assert metrics.snapshot()["slow_clients_closed"] == 1
    assert any("4507" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    await server.inbox.put({"type": "websocket.disconnect", "code": 4507})
    await asyncio.wait_for(app, 5)
    await reader.close()


# Protocol version 2 (docs/protocol.md#version-2) ------------------------------------------


async def v2_message(window):
    """The next websocket message of a version 2 window, as its list of frames."""
    message = await window.ws.receive_output(timeout=5)
    assert message["type"] == "websocket.send", message
    return v2_frames(message["text"])


def deliver_message(name, kwargs, seq, epoch, group=BROADCAST_GROUP):
    """A group message as a publishing process sends it (version 1 frame inside)."""
    text = protocol.encode({"type": "signal", "signal": name, "kwargs": kwargs, "id": uuid.uuid4().hex})
    frame = with_position(text, alias(group), seq, epoch)
    return {**DELIVER.build(id=uuid.uuid4().hex, frame=frame, multi=False), "group": group}


async def test_a_version_2_window_gets_compact_signals():
    window = await open_window(make_key(), protocol=2)
    assert window.welcome["protocol"] == 2
    await acall("t.hello", BROADCAST, kwargs={"n": 1})
    [frame] = await v2_message(window)
    assert frame == ["t.hello", {"n": 1}, alias(BROADCAST_GROUP), 1]
    assert window.welcome["seqs"][alias(BROADCAST_GROUP)] == "0-0"
    reply = await window.call("t.echo", value="x")  # requests and replies are unchanged
    assert reply["result"]["kwargs"] == {"value": "x"}
    await window.close()


async def test_versions_1_and_2_are_served_side_by_side():
    old, new = await open_window(make_key()), await open_window(make_key(), protocol=2)
    await acall("t.both", BROADCAST, kwargs={"a": [1, "é"]})
    v1 = await old.receive()
    assert v1["type"] == "signal" and v1["signal"] == "t.both" and v1["kwargs"] == {"a": [1, "é"]}
    assert len(v1["id"]) == 32 and v1["seq"] == "1-0"
    [v2] = await v2_message(new)
    assert v2 == ["t.both", {"a": [1, "é"]}, v1["g"], 1]
    await old.close()
    await new.close()


async def test_a_batch_reaches_a_version_2_window_as_one_message_in_order():
    old, new = await open_window(make_key()), await open_window(make_key(), protocol=2)
    epoch = new.welcome["e"]
    hub = await get_hub()
    await hub.deliver_many([deliver_message("t.burst", {"i": i}, i + 1, epoch) for i in range(5)])
    frames = await v2_message(new)
    assert frames == [["t.burst", {"i": i}, alias(BROADCAST_GROUP), i + 1] for i in range(5)]
    assert [(await old.receive())["kwargs"]["i"] for _ in range(5)] == list(range(5))  # v1: one each
    await old.close()
    await new.close()


async def test_a_version_2_window_is_told_of_a_new_history_epoch_once():
    window = await open_window(make_key(), protocol=2)
    hub = await get_hub()
    await hub.deliver_many([deliver_message("t.e", {"i": 0}, 1, "new-epoch")])
    assert await v2_message(window) == [["t.e", {"i": 0}, alias(BROADCAST_GROUP), 1, "new-epoch"]]
    await hub.deliver_many([deliver_message("t.e", {"i": 1}, 2, "new-epoch")])
    assert await v2_message(window) == [["t.e", {"i": 1}, alias(BROADCAST_GROUP), 2]]
    await window.close()


@pytest.mark.parametrize("version", [0, 3, "2", True, None, 2.0])
async def test_a_hello_for_an_unknown_protocol_version_is_refused(version):
    ws = await connect_raw()
    await ws.send_json_to({"type": "hello", "window_key": make_key(), "protocol": version})
    assert await expect_close(ws) == CloseCode.BAD_HELLO


async def test_a_hello_without_a_version_is_version_1():
    ws = await connect_raw()
    await ws.send_json_to({"type": "hello", "window_key": make_key()})
    welcome = await ws.receive_json_from(timeout=5)
    assert welcome["type"] == "welcome" and welcome["protocol"] == 1
    await ws.disconnect()


@pytest.mark.parametrize("version", [1, 2])
async def test_a_hub_that_is_behind_writes_nothing_older_than_the_welcome(version):
    """Messages published before a window's welcome, still on their way through a busy
    hub, are not written to it after the welcome: the window starts where the welcome says."""
    for n in range(3):
        await acall("t.before", BROADCAST, kwargs={"n": n})
    window = await open_window(make_key(), protocol=version)
    epoch = window.welcome["e"]
    assert window.welcome["seqs"][alias(BROADCAST_GROUP)] == "3-0"
    hub = await get_hub()
    late = [deliver_message("t.before", {"n": n}, n + 1, epoch) for n in range(3)]
    await hub.deliver_many([*late, deliver_message("t.after", {"n": 3}, 4, epoch)])
    message = await window.ws.receive_output(timeout=5)
    frames = v2_frames(message["text"]) if version == 2 else [json.loads(message["text"])]
    names = [f[0] if isinstance(f, list) else f["signal"] for f in frames]
    assert names == ["t.after"]
    await window.close()
