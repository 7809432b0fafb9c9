"""Replay after a reconnect, as a window sees it (memory history, in-memory layer)."""

import asyncio
import logging
import random

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from floorchannels import BROADCAST, USER, WINDOW, acall, history, metrics
from floorchannels.history import alias, parse_seq
from floorchannels.topics import BROADCAST_GROUP, group_for_topic, window_group
from floorchannels.windows import load_key
from tests.conftest import (
    Window,
    await_until,
    connect_raw,
    frames_before_marker,
    frames_before_pong,
    make_key,
    nothing_before_marker,
    open_window,
    v2_frames,
)

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


async def frames_of(window):
    """What a resumed window was sent during its hello: the replay comes before the pong."""
    return await frames_before_pong(window)


async def live_frames_of(window):
    """Its replay and the live messages sent so far (a BROADCAST marker comes after them)."""
    [frames] = await frames_before_marker(window)
    return frames


async def delivered(bystander, count):
    """The hub has handed out the last ``count`` messages: a window that was there saw them.

    A window that resumes afterwards then gets them from the history only, never live too.
    """
    return [await bystander.receive() for _ in range(count)]


async def publish_numbers(start, stop, interleaved=False):
    """BROADCAST ``m`` signals numbered ``start`` to ``stop - 1``; ``interleaved``: giving
    the loop a turn after each, so they arrive while a window is replayed."""
    for n in range(start, stop):
        await acall("m", BROADCAST, kwargs={"n": n})
        if interleaved:
            await asyncio.sleep(0)


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
    frames = await live_frames_of(back)
    assert [f["kwargs"]["n"] for f in frames] == [1, 2, 3, 4, 5, 6]
    assert [f["seq"] for f in frames] == [f"{n}-0" for n in range(2, 8)]
    await back.close()


async def test_the_seam_has_no_gap_and_no_duplicate():
    key = make_key()
    window = await hello(key)
    await acall("m", BROADCAST, kwargs={"n": 0})
    first = await window.receive()
    await window.close()
    await publish_numbers(1, 50)
    publisher = asyncio.ensure_future(publish_numbers(50, 80, interleaved=True))
    back = await hello(key, {"e": first["e"], "seqs": {first["g"]: first["seq"]}})
    await publisher
    numbers = [f["kwargs"]["n"] for f in await live_frames_of(back) if f["type"] == "signal"]
    assert numbers == list(range(1, 80)), str(numbers)
    await back.close()


async def test_trimmed_history_gives_a_resync_with_the_current_position():
    with override_settings(FLOORCHANNELS={"HISTORY_SIZE": 3}):
        history.reset()
        key = make_key()
        window, bystander = await hello(key), await hello(make_key())
        await acall("m", BROADCAST, kwargs={"n": 0})
        first = await window.receive()
        await window.close()
        for n in range(1, 10):
            await acall("m", BROADCAST, kwargs={"n": n})
        # Delivered (to nobody of that window) before it comes back: no live copy follows the resync.
        assert (await delivered(bystander, 10))[-1]["kwargs"] == {"n": 9}
        back = await hello(key, {"e": first["e"], "seqs": {first["g"]: first["seq"]}})
        frames = await frames_of(back)
        assert frames == [
            {"type": "resync", "reason": "history", "g": first["g"], "seq": "10-0", "e": first["e"]}
        ]
        await back.close()
        await bystander.close()


async def test_expired_history_gives_a_resync():
    with override_settings(FLOORCHANNELS={"HISTORY_TTL": 0.2}):
        history.reset()
        key = make_key()
        window, bystander = await hello(key), await hello(make_key())
        await acall("m", BROADCAST)
        first = await window.receive()
        await window.close()
        await acall("m", BROADCAST)
        await delivered(bystander, 2)
        store, seen = history.get_history(), parse_seq(first["seq"])

        # The TTL under test: poll until the history no longer holds what the window missed.
        async def expired():
            return await store.since(BROADCAST_GROUP, first["e"], seen) == history.TRIMMED

        await await_until(expired, what="the missed message to pass HISTORY_TTL")
        back = await hello(key, {"e": first["e"], "seqs": {first["g"]: first["seq"]}})
        assert [f["reason"] for f in await frames_of(back)] == ["history"]
        await back.close()
        await bystander.close()


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


# Resuming exactly where welcome said (no spurious resync) --------------------------------


async def test_a_resume_at_the_welcome_positions_replays_nothing_and_never_resyncs():
    key = make_key(topics=["room", "other"])
    window = await hello(key)
    assert set(window.welcome["seqs"].values()) == {"0-0"}  # no group has a message yet
    resume = {"e": window.welcome["e"], "seqs": window.welcome["seqs"]}
    await window.close()
    back = await hello(key, resume)
    assert await frames_of(back) == []
    await back.close()


async def test_a_resume_at_the_welcome_positions_with_some_groups_busy():
    key = make_key(topics=["room", "other"])
    for n in range(3):
        await acall("m", BROADCAST, kwargs={"n": n})
        await acall("m", "room", kwargs={"n": n})
    window = await hello(key)
    positions = window.welcome["seqs"]
    assert positions[alias(BROADCAST_GROUP)] == "3-0" and positions[alias(group_for_topic("room"))] == "3-0"
    await window.close()
    back = await hello(key, {"e": window.welcome["e"], "seqs": positions})
    assert await frames_of(back) == []
    await back.close()
    # Away again: only what was missed comes, in the group it was sent to.
    await acall("m", "other", kwargs={"n": 9})
    again = await hello(key, {"e": window.welcome["e"], "seqs": positions})
    frames = await frames_of(again)
    assert [(f["type"], f["g"], f["seq"], f["kwargs"]) for f in frames] == [
        ("signal", alias(group_for_topic("other")), "1-0", {"n": 9})
    ]
    await again.close()


# The in-memory history's bounds ----------------------------------------------------------


def _history(**settings):
    return override_settings(FLOORCHANNELS={"HISTORY_TTL": 600, **settings})


async def test_groups_idle_past_the_ttl_lose_their_entries_but_not_their_position():
    with _history(HISTORY_TTL=0.2):
        store = history.MemoryHistory()
        for n in range(3):
            await store.append("idle", f"m{n}", "{}")

        async def swept():  # by the next append after the TTL
            await store.append("busy", "b", "{}")
            return store.entries.get("idle") is None

        await await_until(swept, what="the idle group's entries to pass HISTORY_TTL")
        assert store.counters["idle"] == 3
        assert await store.since("idle", store.epoch, 3) == []  # saw everything: nothing lost
        assert await store.since("idle", store.epoch, 1) == history.TRIMMED  # missed some: resync
        assert (await store.append("idle", "m3", "{}"))[1] == 4


async def test_forgotten_groups_never_reuse_positions_and_never_lose_silently(caplog):
    with _history(HISTORY_MAX_GROUPS=2):
        store = history.MemoryHistory()
        for n in range(5):
            await store.append("a", f"a{n}", "{}")
        await store.append("b", "b0", "{}")
        with caplog.at_level(logging.WARNING, logger="floorchannels.history"):
            await store.append("c", "c0", "{}")  # "a" is the least recently used: forgotten
        assert "a" not in store.counters and store.floor == 5
        assert metrics.snapshot()["history_evicted"] == 1
        assert "HISTORY_MAX_GROUPS" in caplog.text
        # A window that saw a's last message missed nothing; one that did not must resync.
        assert await store.since("a", store.epoch, 5) == []
        assert await store.since("a", store.epoch, 2) == history.TRIMMED
        # Unknown groups stand at the floor, and their next message comes after it.
        _, positions = await store.positions(["a", "never"])
        assert positions == {"a": 5, "never": 5}
        assert await store.since("never", store.epoch, 5) == []
        assert (await store.append("a", "a5", "{}"))[1] == 6
        assert await store.since("a", store.epoch, 5) == [history.Entry(6, "a5", "{}")]
        assert await store.since("a", store.epoch, 4) == history.TRIMMED


async def test_entries_are_bounded_in_bytes_across_groups():
    with _history(HISTORY_MAX_BYTES=1000):
        store = history.MemoryHistory()
        frame = "x" * 100
        for n in range(30):
            await store.append(f"g{n % 4}", f"m{n}", frame)
            assert store.size <= 1000 + len(frame)
            assert store.size == sum(len(row[3]) for rows in store.entries.values() for row in rows)
        assert metrics.snapshot()["history_evicted"] > 0


async def test_bounded_memory_history_replays_exactly_or_resyncs():
    """Whatever the bounds drop, every position a window could hold gets either exactly
    the messages after it, or a resync: never a silent gap."""
    rng = random.Random(7)
    with _history(HISTORY_MAX_GROUPS=3, HISTORY_MAX_BYTES=400, HISTORY_SIZE=5):
        store = history.MemoryHistory()
        sent: dict[str, list[int]] = {}
        for n in range(400):
            group = f"g{rng.randrange(6)}"
            _, seq = await store.append(group, f"m{n}", "y" * rng.randrange(1, 60))
            assert seq > max(sent.get(group, [0])), "positions never run backwards"
            sent.setdefault(group, []).append(seq)
            if n % 10:
                continue
            for name, seqs in sent.items():
                _, now = await store.positions([name])
                for seen in {0, *seqs}:
                    answer = await store.since(name, store.epoch, seen)
                    if isinstance(answer, str):
                        assert answer in (history.TRIMMED, history.EPOCH)
                        continue
                    assert [e.seq for e in answer] == [s for s in seqs if s > seen], (name, seen)
                    assert not answer or answer[-1].seq == now[name]


# A message sent to several groups ---------------------------------------------------------


async def test_a_copy_lists_the_messages_place_in_the_groups_sent_after_it_never_private_ones():
    key = make_key(topics=["room"])
    inside, outside = await hello(key), await hello(make_key())
    await acall("m", ["room", BROADCAST], kwargs={"n": 1})
    got = await inside.receive()
    assert got["g"] == alias(group_for_topic("room"))  # topics go before BROADCAST
    assert got["o"] == {alias(BROADCAST_GROUP): got["o"][alias(BROADCAST_GROUP)]}
    broadcast_seq = got["o"][alias(BROADCAST_GROUP)]
    plain = await outside.receive()
    assert (plain["g"], plain["seq"], "o" in plain) == (alias(BROADCAST_GROUP), broadcast_seq, False)

    # A window's and a user's groups go first, and no copy names them.
    await acall("m", [USER(42), "room", BROADCAST, WINDOW], window=load_key(key), kwargs={"n": 2})
    got = await inside.receive()
    assert got["g"] == alias(window_group(load_key(key).window_id))
    assert set(got["o"]) == {alias(group_for_topic("room")), alias(BROADCAST_GROUP)}
    plain = await outside.receive()
    assert "o" not in plain and plain["g"] == alias(BROADCAST_GROUP)
    await nothing_before_marker(inside, outside)
    await inside.close()
    await outside.close()


async def test_a_windows_own_copy_names_its_users_group():
    from django.contrib.auth.models import User

    from floorchannels.topics import user_group
    from tests.conftest import open_window, session_headers

    user = await sync_to_async(User.objects.create_user)("ann", password="x")
    key = make_key(user)
    window = await open_window(key, await sync_to_async(session_headers)(user))
    info = load_key(key)
    await acall("m", [WINDOW, USER, BROADCAST], window=info, kwargs={"n": 1})
    got = await window.receive()
    assert got["g"] == alias(window_group(info.window_id))
    assert set(got["o"]) == {alias(user_group(user.pk)), alias(BROADCAST_GROUP)}
    await nothing_before_marker(window)
    await window.close()


async def test_a_version_2_window_resumes_without_a_gap_or_a_duplicate():
    """The seam under protocol 2: the replay comes as batches of compact signals, and the
    live copies of replayed messages are dropped although they carry no id."""
    key = make_key()
    window = await open_window(key, protocol=2)
    await acall("m", BROADCAST, kwargs={"n": 0})
    message = await window.ws.receive_output(timeout=5)
    [[_, _, g, seq]] = v2_frames(message["text"])
    await window.close()
    await publish_numbers(1, 50)
    publisher = asyncio.ensure_future(publish_numbers(50, 80, interleaved=True))
    back = await connect_raw()
    resume = {"e": window.welcome["e"], "seqs": {g: f"{seq}-0"}}
    await back.send_json_to({"type": "hello", "window_key": key, "protocol": 2, "resume": resume})
    welcome = await back.receive_json_from(timeout=5)
    assert welcome["type"] == "welcome" and welcome["protocol"] == 2
    await publisher
    await acall("end", BROADCAST)
    numbers, batches = [], 0
    while True:
        frames = v2_frames((await back.receive_output(timeout=5))["text"])
        batches += len(frames) > 1
        signals = [f for f in frames if isinstance(f, list)]
        assert all(len(f) == 4 and f[2] == g for f in signals), signals  # same epoch: no e
        numbers += [f[1]["n"] for f in signals if f[0] == "m"]
        if any(f[0] == "end" for f in signals):
            break
    assert numbers == list(range(1, 80)), str(numbers)
    assert batches >= 1  # the replay of 49 messages is not 49 websocket messages
    await back.disconnect()
