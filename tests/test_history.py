"""Replay after a reconnect, as a window sees it (memory history, in-memory layer)."""

import asyncio

import pytest
from django.test import override_settings

from floorchannels import BROADCAST, WINDOW, acall, history
from floorchannels.history import alias
from floorchannels.topics import BROADCAST_GROUP
from floorchannels.windows import load_key
from tests.conftest import Window, connect_raw, make_key

pytestmark = pytest.mark.django_db(transaction=True)


async def hello(key, resume=None):
    ws = await connect_raw()
    frame = {"type": "hello", "window_key": key, "protocol": 1}
    if resume is not None:
        frame["resume"] = resume
    await ws.send_json_to(frame)
    welcome = await ws.receive_json_from(timeout=5)
    assert welcome["type"] == "welcome", welcome
    return Window(ws, welcome)


async def frames_of(window, quiet=0.3):
    frames = []
    while not await window.ws.receive_nothing(timeout=quiet):
        frames.append(await window.receive())
    return frames


async def test_welcome_says_where_each_group_stands():
    key = make_key(topics=["room"])
    await acall("before", BROADCAST)
    window = await hello(key)
    assert window.welcome["seqs"][alias(BROADCAST_GROUP)] == "1-0"
    assert len(window.welcome["seqs"]) == 3  # broadcast, window, topic
    await window.close()


async def test_missed_messages_are_replayed_in_order_then_live_continues():
    key = make_key()
    window = await hello(key)
    await acall("m", BROADCAST, kwargs={"n": 0})
    first = await window.receive()
    resume = {"e": first["e"], "seqs": {first["g"]: first["seq"]}}
    await window.close()

    for n in range(1, 6):  # the window is away
        await acall("m", BROADCAST, kwargs={"n": n})
    back = await hello(key, resume)
    await acall("m", BROADCAST, kwargs={"n": 6})
    frames = await frames_of(back)
    assert [f["kwargs"]["n"] for f in frames] == [1, 2, 3, 4, 5, 6]
    assert [f["seq"] for f in frames] == [f"{n}-0" for n in range(2, 8)]
    await back.close()


async def test_the_seam_has_no_gap_and_no_duplicate():
    key = make_key()
    window = await hello(key)
    await acall("m", BROADCAST, kwargs={"n": 0})
    first = await window.receive()
    await window.close()
    for n in range(1, 50):
        await acall("m", BROADCAST, kwargs={"n": n})

    async def publish_during_replay():
        for n in range(50, 80):
            await acall("m", BROADCAST, kwargs={"n": n})
            await asyncio.sleep(0)

    publisher = asyncio.ensure_future(publish_during_replay())
    back = await hello(key, {"e": first["e"], "seqs": {first["g"]: first["seq"]}})
    await publisher
    numbers = [f["kwargs"]["n"] for f in await frames_of(back) if f["type"] == "signal"]
    assert numbers == list(range(1, 80)), str(numbers)
    await back.close()


async def test_trimmed_history_gives_a_resync_with_the_current_position():
    with override_settings(FLOORCHANNELS={"HISTORY_SIZE": 3}):
        history.reset()
        key = make_key()
        window = await hello(key)
        await acall("m", BROADCAST, kwargs={"n": 0})
        first = await window.receive()
        await window.close()
        for n in range(1, 10):
            await acall("m", BROADCAST, kwargs={"n": n})
        await asyncio.sleep(0.2)  # away long enough for those to be delivered (to nobody)
        back = await hello(key, {"e": first["e"], "seqs": {first["g"]: first["seq"]}})
        frames = await frames_of(back)
        assert frames == [
            {"type": "resync", "reason": "history", "g": first["g"], "seq": "10-0", "e": first["e"]}
        ]
        await back.close()


async def test_expired_history_gives_a_resync():
    with override_settings(FLOORCHANNELS={"HISTORY_TTL": 0.2}):
        history.reset()
        key = make_key()
        window = await hello(key)
        await acall("m", BROADCAST)
        first = await window.receive()
        await window.close()
        await acall("m", BROADCAST)
        await asyncio.sleep(0.4)
        back = await hello(key, {"e": first["e"], "seqs": {first["g"]: first["seq"]}})
        assert [f["reason"] for f in await frames_of(back)] == ["history"]
        await back.close()


async def test_another_epoch_gives_a_resync():
    key = make_key()
    window = await hello(key)
    await acall("m", BROADCAST)
    first = await window.receive()
    await window.close()
    back = await hello(key, {"e": "not-this-epoch", "seqs": {first["g"]: first["seq"]}})
    assert [f["reason"] for f in await frames_of(back)] == ["epoch"]
    await back.close()


async def test_a_window_is_never_replayed_another_windows_group():
    victim_key = make_key()
    victim = await hello(victim_key)
    info = load_key(victim_key)
    await acall("private", WINDOW, window=info, kwargs={"secret": 1})
    private = await victim.receive()
    attacker = await hello(make_key())
    await attacker.close()
    # The attacker presents the victim's WINDOW alias as if it had seen its messages.
    back = await hello(make_key(), {"e": private["e"], "seqs": {private["g"]: "0-0"}})
    assert await frames_of(back) == []
    await back.close()
    await victim.close()


async def test_delayed_messages_stay_out_of_the_history():
    key = make_key()
    window = await hello(key)
    await acall("later", BROADCAST, countdown=0.2)
    frame = await window.receive(timeout=2)
    assert "seq" not in frame
    await window.close()
