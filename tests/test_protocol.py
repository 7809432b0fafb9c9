"""The protocol's edges, as docs/protocol.md states them (in-process; see also
tests/e2e/test_protocol_edges.py for what needs real servers)."""

import json
import logging
import math
import secrets

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template
from django.test import RequestFactory, override_settings

from floorchannels import BROADCAST, acall, call, everyone, protocol, signal
from floorchannels.conf import fc_settings
from floorchannels.dispatch import UnsendableSignal
from floorchannels.windows import WindowKeyTooLarge, hello_size, load_key
from tests.conftest import Window, connect_raw, expect_close, make_key, nothing_before_marker, open_window

pytestmark = pytest.mark.django_db(transaction=True)


@signal("edge.infinity", is_allowed_to=everyone)
def infinity(window):
    return 1e308 + 1e308


@signal("edge.nan", is_allowed_to=everyone)
def not_a_number(window):
    return {"nested": [float("nan")]}


def strict_json(text: str):
    """Parse as a browser's JSON.parse would: NaN and Infinity are errors."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


async def raw_call(window: Window, signal_name: str, call_id: int = 1) -> dict:
    await window.ws.send_json_to({"type": "call", "id": call_id, "signal": signal_name, "kwargs": {}})
    return strict_json(await window.ws.receive_from(timeout=5))


# unsubscribe ------------------------------------------------------------------------------


async def test_unsubscribe_of_an_unknown_id_on_a_fresh_window_is_ok_and_logs_no_error(caplog):
    window = await open_window(make_key())
    with caplog.at_level(logging.DEBUG, logger="floorchannels"):
        for n in range(3):
            await window.ws.send_json_to({"type": "unsubscribe", "id": f"u{n}", "subscription": "never"})
            reply = await window.receive(timeout=5)
            assert reply == {"type": "reply", "id": f"u{n}", "ok": True, "result": None}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    await window.close()


async def test_unsubscribe_without_a_subscription_id_is_an_invalid_frame():
    window = await open_window(make_key())
    await window.ws.send_json_to({"type": "unsubscribe", "id": "u1"})
    reply = await window.receive(timeout=5)
    assert reply["ok"] is False and reply["error"]["code"] == protocol.INVALID_FRAME
    await window.close()


# strict JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_encode_refuses_what_is_not_json(value):
    with pytest.raises(ValueError):
        protocol.encode({"type": "reply", "result": value})


@pytest.mark.parametrize("name", ["edge.infinity", "edge.nan"])
async def test_a_result_that_is_not_json_is_answered_server_error(name, caplog):
    window = await open_window(make_key())
    with caplog.at_level(logging.ERROR, logger="floorchannels"):
        reply = await raw_call(window, name)
    assert reply["ok"] is False and reply["error"]["code"] == protocol.SERVER_ERROR, reply
    assert any("not JSON" in r.getMessage() for r in caplog.records)
    # The window is still usable.
    assert (await window.call("t.add", a=1, b=2))["result"] == 3
    await window.close()


async def test_acall_with_kwargs_that_are_not_json_raises_before_sending():
    window = await open_window(make_key())
    with pytest.raises(UnsendableSignal, match="not strict JSON"):
        await acall("edge.bad", BROADCAST, kwargs={"ratio": 1e308 * 10})
    with pytest.raises(UnsendableSignal, match="not strict JSON"):
        await acall("edge.bad", BROADCAST, kwargs={"what": object()})
    await nothing_before_marker(window)
    await window.close()


async def test_sync_call_with_nan_kwargs_raises_a_clear_error():
    with pytest.raises(UnsendableSignal, match="edge.bad.*not strict JSON"):
        await sync_to_async(call)("edge.bad", BROADCAST, kwargs={"v": float("nan")})


# MAX_MESSAGE_SIZE -------------------------------------------------------------------------


@override_settings(FLOORCHANNELS={"MAX_MESSAGE_SIZE": 2000})
async def test_a_signal_over_max_message_size_raises_and_the_largest_allowed_arrives_within_it():
    window = await open_window(make_key())
    sent = 0

    async def fits(n: int) -> bool:
        nonlocal sent
        try:
            await acall("edge.big", BROADCAST, kwargs={"s": "é" * n})  # 2 bytes each in UTF-8
        except UnsendableSignal as exc:
            assert "MAX_MESSAGE_SIZE" in str(exc)
            return False
        sent += 1
        return True

    low, high = 0, 2000  # fits(low), not fits(high)
    assert not await fits(high)
    while high - low > 1:
        middle = (low + high) // 2
        if await fits(middle):
            low = middle
        else:
            high = middle
    # Drain what the search sent (each allowed one arrives whole), then measure the largest.
    for _ in range(sent):
        assert strict_json(await window.ws.receive_from(timeout=5))["signal"] == "edge.big"
    await acall("edge.big", BROADCAST, kwargs={"s": "é" * low})
    text = await window.ws.receive_from(timeout=5)
    assert len(text.encode()) <= fc_settings.MAX_MESSAGE_SIZE
    assert strict_json(text)["kwargs"]["s"] == "é" * low
    # The limit is the frame's, less what the history's position fields may take at most.
    assert len(text.encode()) > fc_settings.MAX_MESSAGE_SIZE - 150
    await window.close()


# window keys ------------------------------------------------------------------------------


def _request():
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    return request


def _largest_topic_count() -> int:
    from floorchannels import window_key

    low, high = 1, 5000
    while high - low > 1:
        middle = (low + high) // 2
        try:
            window_key(_request(), topics=[f"t{i}" for i in range(middle)])
            low = middle
        except WindowKeyTooLarge:
            high = middle
    return low


def test_window_key_refuses_topics_its_hello_could_not_carry():
    from floorchannels import window_key

    with pytest.raises(WindowKeyTooLarge, match="MAX_FRAME_SIZE"):
        window_key(_request(), topics=[f"room-{i}" for i in range(10_000)])


def test_window_key_refuses_a_key_longer_than_the_server_reads():
    from floorchannels import window_key

    incompressible = [secrets.token_urlsafe(48) for _ in range(400)]
    with pytest.raises(WindowKeyTooLarge, match="16,384"):
        window_key(_request(), topics=incompressible)


def test_the_template_tag_refuses_too_many_topics_too():
    template = Template("{% load floorchannels %}{% floorchannels_script topics %}")
    with pytest.raises(WindowKeyTooLarge):
        template.render(Context({"request": _request(), "topics": [f"room-{i}" for i in range(10_000)]}))


async def test_the_largest_key_issued_connects_and_resumes_every_group():
    """Accept what is issued: the worst-case reconnect hello of the largest key fits."""
    count = await sync_to_async(_largest_topic_count)()
    assert count > 100
    key = make_key(topics=[f"t{i}" for i in range(count)])
    groups = load_key(key).groups
    seqs = {f"{n:012x}": "9" * 20 + "-0" for n in range(len(groups))}
    hello = {"type": "hello", "window_key": key, "protocol": 1, "resume": {"e": "e" * 64, "seqs": seqs}}
    text = json.dumps(hello, separators=(",", ":"))
    assert len(text) <= hello_size(key, len(groups)) <= fc_settings.MAX_FRAME_SIZE
    communicator = await connect_raw()
    await communicator.send_to(text_data=text)
    welcome = await communicator.receive_json_from(timeout=10)
    assert welcome["type"] == "welcome", welcome
    assert len(welcome["seqs"]) == len(groups)
    await communicator.disconnect()
    with pytest.raises(WindowKeyTooLarge):
        make_key(topics=[f"t{i}" for i in range(count + 1)])


async def test_a_hello_over_max_frame_size_is_closed_4413():
    """What window_key() now prevents: the server's answer to a hello that is too large."""
    communicator = await connect_raw()
    await communicator.send_to(text_data="x" * (fc_settings.MAX_FRAME_SIZE + 1))
    assert await expect_close(communicator) == protocol.CloseCode.TOO_LARGE
