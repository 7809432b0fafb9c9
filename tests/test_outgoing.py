"""Frames in each protocol version's form (floorchannels.outgoing, docs/protocol.md)."""

import json

from floorchannels import protocol
from floorchannels.history import with_position
from floorchannels.outgoing import BATCH_CHARS, Outgoing, join

KWARGS = {"s": 123, "t": 1764532345.123456}


def signal(name="bench.message", kwargs=KWARGS, message_id="a" * 32):
    return protocol.encode({"type": "signal", "signal": name, "kwargs": kwargs, "id": message_id})


def test_a_signal_without_position_is_its_name_and_kwargs():
    item = Outgoing(signal())
    assert json.loads(item.compact(None)[0]) == ["bench.message", KWARGS]
    assert item.message_id == "a" * 32


def test_a_positioned_signal_names_its_epoch_only_when_the_client_is_in_another():
    item = Outgoing(with_position(signal(), "abcdef012345", 41, "e" * 16))
    text, epoch = item.compact("e" * 16)
    assert json.loads(text) == ["bench.message", KWARGS, "abcdef012345", 41]
    assert epoch == "e" * 16
    text, epoch = item.compact("f" * 16)
    assert json.loads(text) == ["bench.message", KWARGS, "abcdef012345", 41, "e" * 16]
    assert epoch == "e" * 16  # the client has moved to the message's epoch


def test_positions_in_other_groups_are_integers():
    item = Outgoing(with_position(signal(), "g1", 5, "ep", {"g2": 9, "g3": 11}))
    assert json.loads(item.compact("ep")[0]) == ["bench.message", KWARGS, "g1", 5, None, {"g2": 9, "g3": 11}]
    assert json.loads(item.compact("old")[0]) == ["bench.message", KWARGS, "g1", 5, "ep", {"g2": 9, "g3": 11}]


def test_other_frames_are_the_same_text_in_both_versions():
    text = protocol.encode({"type": "resync", "reason": "layer_outage"})
    item = Outgoing(text)
    assert item.compact("e") == (text, "e")
    assert item.message_id is None


def test_unicode_and_nested_kwargs_survive_the_compact_form():
    kwargs = {"text": "naïve “quotes” \u2028 ✓", "nested": {"a": [1, 2.5, None, True]}}
    item = Outgoing(with_position(signal(kwargs=kwargs), "g", 1, "e"))
    assert json.loads(item.compact("e")[0])[1] == kwargs


def test_the_envelope_is_at_most_forty_bytes_more_than_the_payload():
    """Issue 16's bound, for a typical broadcast: a 13-character name, a position in the
    history up to a million."""
    payload = json.dumps(KWARGS, separators=(",", ":"))
    v1 = with_position(signal(), "abcdef012345", 999_999, "0123456789abcdef")
    v2, _ = Outgoing(v1).compact("0123456789abcdef")
    assert len(v2.encode()) - len(payload) <= 40, v2
    assert len(v1) - len(payload) > 140  # what version 1 costs


def test_join_keeps_order_and_bounds_each_message():
    texts = [json.dumps(["s", {"i": i, "pad": "x" * 1000}]) for i in range(200)]
    messages = join(texts)
    assert len(messages) > 1
    frames = [f for m in messages for f in json.loads(m)]
    assert [f[1]["i"] for f in frames] == list(range(200))
    assert all(len(m) <= BATCH_CHARS for m in messages)


def test_join_sends_one_frame_alone_and_a_large_frame_in_a_message_of_its_own():
    one = json.dumps(["s", {}])
    assert join([one]) == [one]
    big = json.dumps(["big", {"pad": "x" * (BATCH_CHARS + 10)}])
    messages = join([one, big, one])
    assert messages == [one, big, one]


def test_a_backlog_leaves_as_few_messages_with_every_frame_in_order():
    from collections import deque

    from floorchannels.outgoing import take

    one = json.dumps(["s", {"i": 0}])
    batch = "[" + ",".join(json.dumps(["s", {"i": i}]) for i in (1, 2)) + "]"
    reply = json.dumps({"type": "reply", "id": 3, "ok": True, "result": None})
    waiting = deque([one, batch, reply])
    text, taken = take(waiting)
    assert taken == [one, batch, reply] and not waiting
    frames = json.loads(text)
    assert [f[1]["i"] for f in frames[:3]] == [0, 1, 2] and frames[3]["id"] == 3
    big = json.dumps(["s", {"pad": "x" * BATCH_CHARS}])
    waiting = deque([one, big, one])
    assert take(waiting) == (one, [one])
    assert take(waiting) == (big, [big])
