"""Bad input, abuse and faults, as a client and an operator observe them."""

import asyncio
import json
import logging
import time
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floorchannels import BROADCAST, acall, metrics
from floorchannels.protocol import CloseCode
from tests.conftest import (
    await_until,
    connect_raw,
    expect_close,
    make_key,
    nothing_before_marker,
    open_window,
    session_headers,
)
from tests.testapp import signals as test_signals

pytestmark = pytest.mark.django_db(transaction=True)


async def test_oversized_frame_closes_with_4413():
    with override_settings(FLOORCHANNELS={"MAX_FRAME_SIZE": 1000}):
        window = await open_window(make_key())
        await window.ws.send_to(text_data='{"type": "ping", "pad": "' + "x" * 2000 + '"}')
        assert await expect_close(window.ws) == CloseCode.TOO_LARGE
    assert metrics.snapshot()["refused_too_large"] == 1


async def test_deeply_nested_frame_is_an_error_not_a_crash():
    window = await open_window(make_key())
    await window.ws.send_to(text_data="[" * 30000 + "]" * 30000)
    assert (await window.receive())["code"] == "invalid_frame"
    await window.ws.send_to(
        text_data='{"type": "call", "id": 1, "signal": "t.echo", "kwargs": '
        + '{"a":' * 5000
        + "1"
        + "}" * 5000
        + "}"
    )
    reply = await window.receive()
    assert reply["type"] in ("reply", "error")
    assert (await window.call("t.add", a=1))["result"] == 1
    await window.close()


async def test_flood_is_rate_limited_then_closed():
    with override_settings(
        FLOORCHANNELS={"RATE_LIMIT": 5, "RATE_LIMIT_BURST": 5, "RATE_LIMIT_CLOSE_AFTER": 20}
    ):
        window = await open_window(make_key())
        for i in range(10):
            await window.ws.send_json_to({"type": "call", "id": i, "signal": "t.add", "kwargs": {"a": i}})
        replies = [await window.receive() for _ in range(10)]
        codes = sorted(r["error"]["code"] if not r["ok"] else "ok" for r in replies)
        assert codes == ["ok"] * 5 + ["rate_limited"] * 5
        # The bucket refills by its clock: once one token's worth of time has passed on it,
        # a well-behaved pace is served again. (Time is the input here, not a guess.)
        refused_at = time.monotonic()
        await await_until(lambda: time.monotonic() - refused_at >= 1 / 5, what="one token refilled")
        assert (await window.call("t.add", a=1))["ok"]
        for _ in range(40):
            await window.ws.send_json_to({"type": "ping"})
        frames = []
        while True:
            message = await window.ws.receive_output(timeout=2)
            if message["type"] == "websocket.close":
                assert message["code"] == CloseCode.RATE_LIMITED
                break
            frames.append(message)
        assert metrics.snapshot()["rate_limited"] >= 20


async def test_hello_larger_than_the_limit_is_refused():
    key = make_key(topics=["x" * 200])  # issued before the limit was lowered
    with override_settings(FLOORCHANNELS={"MAX_FRAME_SIZE": 100}):
        ws = await connect_raw()
        await ws.send_json_to({"type": "hello", "window_key": key, "protocol": 1})
        assert await expect_close(ws) == CloseCode.TOO_LARGE


@pytest.fixture
def alice():
    return User.objects.create_user("alice", password="alice-pass")


@pytest.fixture
def bob():
    return User.objects.create_user("bob", password="bob-pass")


async def test_logout_closes_that_sessions_windows_at_once(alice, bob):
    def browser_session(user):
        client = Client()
        client.force_login(user)
        return client

    laptop, phone = await sync_to_async(browser_session)(alice), await sync_to_async(browser_session)(alice)
    bob_headers = await sync_to_async(session_headers)(bob)

    def headers(client):
        from django.conf import settings as dj

        return [
            (b"cookie", f"{dj.SESSION_COOKIE_NAME}={client.cookies[dj.SESSION_COOKIE_NAME].value}".encode())
        ]

    on_laptop = await open_window(make_key(alice), headers(laptop))
    on_phone = await open_window(make_key(alice), headers(phone))
    of_bob = await open_window(make_key(bob), bob_headers)
    await sync_to_async(laptop.logout)()
    assert await expect_close(on_laptop.ws) == CloseCode.KEY_REFUSED
    await nothing_before_marker(on_phone, of_bob)  # the other session and user stay open
    await on_phone.close()
    await of_bob.close()


@pytest.mark.parametrize("change", ["password", "deactivate"])
async def test_credential_changes_close_every_window_of_the_user(alice, bob, change):
    alice_headers = await sync_to_async(session_headers)(alice)
    bob_headers = await sync_to_async(session_headers)(bob)
    windows = [await open_window(make_key(alice), alice_headers) for _ in range(2)]
    of_bob = await open_window(make_key(bob), bob_headers)

    def apply():
        if change == "password":
            alice.set_password("a-new-password")
        else:
            alice.is_active = False
        alice.save()

    await sync_to_async(apply)()
    for window in windows:
        assert await expect_close(window.ws) == CloseCode.KEY_REFUSED
    await nothing_before_marker(of_bob)
    await of_bob.close()


async def test_unrelated_user_saves_close_nothing(alice):
    headers = await sync_to_async(session_headers)(alice)
    window = await open_window(make_key(alice), headers)

    def touch():
        alice.first_name = "Alice"
        alice.save()

    await sync_to_async(touch)()
    await nothing_before_marker(window)
    await window.close()


async def test_layer_drops_are_counted_and_logged(caplog):
    caplog.set_level(logging.WARNING, "floorchannels.layers")
    layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 2}}}
    with override_settings(CHANNEL_LAYERS=layers):
        from channels.layers import channel_layers

        channel_layers.backends.clear()
        window = await open_window(make_key())
        for i in range(10):  # faster than the hub can read: the layer's queue overflows
            await acall("burst", BROADCAST, kwargs={"i": i})
        assert metrics.snapshot()["dropped"] >= 1
        assert "dropped 1 message(s) for group fc.all" in caplog.text
        await window.close()
        channel_layers.backends.clear()


async def test_memberships_outlive_the_layers_group_expiry():
    layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"group_expiry": 1}}}
    with override_settings(
        CHANNEL_LAYERS=layers, FLOORCHANNELS={"GROUP_SWEEP_INTERVAL": 0.2, "GROUP_REFRESH_INTERVAL": 0.4}
    ):
        from channels.layers import channel_layers

        channel_layers.backends.clear()
        window = await open_window(make_key())
        members = channel_layers["default"].groups["fc.all"]
        joined = max(members.values())
        # Until the layer would have dropped the first membership (it drops those older than
        # int(now) - group_expiry) and the hub's refresh holds one anyway.
        await await_until(
            lambda: int(time.time()) - 1 > joined and members,
            timeout=15,
            what="the group expiry to pass with the membership refreshed",
        )
        await acall("late", BROADCAST)
        assert (await window.receive())["signal"] == "late"
        await window.close()
        channel_layers.backends.clear()


async def test_slow_handlers_do_not_block_other_windows():
    slow = await open_window(make_key())
    other = await open_window(make_key())
    await slow.ws.send_json_to({"type": "call", "id": 1, "signal": "t.gate", "kwargs": {"name": "slow"}})
    await asyncio.wait_for(test_signals.gate("slow.entered").wait(), 5)
    # The slow handler is running and stays so until the gate opens: the other window is
    # answered meanwhile, and the slow window gets nothing yet.
    assert (await other.call("t.add", a=2))["result"] == 2
    assert not test_signals.gate("slow").is_set()
    test_signals.gate("slow").set()
    reply = await slow.receive(5)
    assert (reply["id"], reply["result"]) == (1, "done")
    await slow.close()
    await other.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
frames = st.one_of(
    st.text(max_size=200),
    json_values.map(lambda v: __import__("json").dumps(v)),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["call", "subscribe", "unsubscribe", "ping", "hello", "x"]),
            "id": json_values,
        },
        optional={
            "signal": st.one_of(
                st.sampled_from(["t.add", "t.echo", "t.boom", "t.server_only", "nope"]), json_values
            ),
            "kwargs": json_values,
            "resource": json_values,
            "subscription": json_values,
        },
    ).map(lambda v: __import__("json").dumps(v)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(frames, min_size=1, max_size=8))
def test_random_frames_never_crash_and_calls_always_get_a_reply(batch):
    async def run():
        fuzzed = await open_window(make_key())
        bystander = await open_window(make_key())
        expected_replies = 0
        for text in batch:
            await fuzzed.ws.send_input({"type": "websocket.receive", "text": text})
            try:
                frame = json.loads(text)
            except ValueError:
                continue
            if isinstance(frame, dict) and frame.get("type") in ("call", "subscribe", "unsubscribe"):
                call_id = frame.get("id")
                if (isinstance(call_id, str) and len(call_id) <= 128) or (
                    isinstance(call_id, int) and not isinstance(call_id, bool)
                ):
                    expected_replies += 1
        # Every frame above is answered before a final ping is (error frames and pongs at
        # once, in order); replies to calls may come later, so read until both are in.
        end = {"type": "ping", "id": f"fuzz-end-{uuid.uuid4().hex}"}  # longer than any fuzzed id
        await fuzzed.ws.send_input({"type": "websocket.receive", "text": json.dumps(end)})
        replies, ended = 0, False
        while not ended or replies < expected_replies:
            frame = await fuzzed.receive(5)
            assert frame["type"] in ("reply", "error", "pong"), frame
            replies += frame["type"] == "reply"
            ended = ended or frame == {"type": "pong", "id": end["id"]}
        assert replies == expected_replies
        # The socket and its neighbour still work.
        assert (await fuzzed.call("t.add", a=1))["result"] == 1
        assert (await bystander.call("t.add", a=2))["result"] == 2
        await fuzzed.close()
        await bystander.close()

    asyncio.run(run())
