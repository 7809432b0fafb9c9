"""The hub: delivery to the process's sockets, and its process-wide duties."""

import asyncio
import gc
from collections import OrderedDict

import pytest
from channels.layers import InMemoryChannelLayer

from floorchannels import BROADCAST, WINDOW, acall, hub, messages, metrics
from floorchannels.layers import channel_layer, group_send
from floorchannels.protocol import CloseCode
from floorchannels.topics import BROADCAST_GROUP, group_for_topic, layer_group
from floorchannels.windows import load_key
from tests.conftest import connect_raw, expect_close, make_key, nothing_before_marker, open_window
from tests.testapp import signals


@pytest.fixture
def gc_state(monkeypatch):
    monkeypatch.setattr(hub, "_tuned", False)
    threshold = gc.get_threshold()
    gc.set_threshold(700, *threshold[1:])
    yield
    gc.set_threshold(*threshold)


def test_the_first_connection_tunes_the_garbage_collector(gc_state, settings):
    """Start-up objects are frozen and young collections rarer: full collections, which
    stop the event loop, stop landing in the middle of fan-outs."""
    settings.FLOORCHANNELS = {"GC_TUNING": True}
    before = gc.get_freeze_count()
    hub._tune_gc()
    frozen = gc.get_freeze_count()
    assert frozen > before
    assert gc.get_threshold()[0] == hub.GC_THRESHOLD0
    hub._tune_gc()  # once per process
    assert gc.get_freeze_count() == frozen


def test_a_projects_own_gc_threshold_is_kept(gc_state, settings):
    settings.FLOORCHANNELS = {"GC_TUNING": True}
    gc.set_threshold(5000, 10, 10)
    hub._tune_gc()
    assert gc.get_threshold() == (5000, 10, 10)


def test_gc_tuning_can_be_turned_off(gc_state, settings):
    settings.FLOORCHANNELS = {"GC_TUNING": False}
    before = gc.get_freeze_count()
    hub._tune_gc()
    assert gc.get_freeze_count() == before
    assert gc.get_threshold()[0] == 700


@pytest.mark.django_db(transaction=True)
async def test_a_queued_burst_reaches_each_window_once_and_in_order():
    """Messages waiting on the hub are written socket by socket; each window still gets
    exactly its own messages, once each, in publish order."""
    windows = [await open_window(make_key(topics=["room"])) for _ in range(3)]
    first = load_key(make_key())
    first.window_id = windows[0].welcome["window_id"]
    expected: list[list[int]] = [[], [], []]
    for n in range(150):  # published back to back: the hub finds them queued
        if n % 10 == 3:
            await acall("burst", WINDOW, window=first, kwargs={"n": n})
            expected[0].append(n)
            continue
        targets = [BROADCAST, "room"] if n % 10 == 7 else BROADCAST  # one copy, not two
        await acall("burst", targets, kwargs={"n": n})
        for numbers in expected:
            numbers.append(n)
    for window, numbers in zip(windows, expected, strict=True):
        received = [(await window.receive())["kwargs"]["n"] for _ in numbers]
        assert received == numbers
    await nothing_before_marker(*windows)
    for window in windows:
        await window.close()


# Faults: the hub outlives every one of them ------------------------------------------------


class FlakyLayer(InMemoryChannelLayer):
    """The in-memory layer, failing the calls a test asks it to fail (as Redis would)."""

    fail_new_channel = 0
    fail_group_add = 0
    #: Only memberships of this group fail (any group when None).
    failing_group: str | None = None

    async def new_channel(self, prefix: str = "specific.") -> str:
        if FlakyLayer.fail_new_channel:
            FlakyLayer.fail_new_channel -= 1
            raise ConnectionError("the layer is not up yet")
        return await super().new_channel(prefix)

    async def group_add(self, group: str, channel: str) -> None:
        if FlakyLayer.fail_group_add and FlakyLayer.failing_group in (None, group):
            FlakyLayer.fail_group_add -= 1
            raise ConnectionError("the layer refused the membership")
        await super().group_add(group, channel)


@pytest.fixture
def flaky_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "tests.test_hub.FlakyLayer"}}
    FlakyLayer.fail_new_channel = FlakyLayer.fail_group_add = 0
    FlakyLayer.failing_group = None
    yield FlakyLayer
    FlakyLayer.fail_new_channel = FlakyLayer.fail_group_add = 0
    FlakyLayer.failing_group = None


async def _send_to_group(group: str, message: dict) -> None:
    await group_send(channel_layer(), group, message)


async def test_a_malformed_layer_message_is_skipped_and_delivery_goes_on(caplog):
    """A rolling deploy may send messages of a shape this release does not know: each is
    counted, its kind logged once, and the next message is delivered as usual."""
    window = await open_window(make_key())
    broken = {"type": "fc.deliver", "id": "x", "group": BROADCAST_GROUP}  # no frame
    for _ in range(3):
        await _send_to_group(BROADCAST_GROUP, broken)
    await _send_to_group(BROADCAST_GROUP, {"type": "fc.from_the_future", "group": BROADCAST_GROUP})
    await acall("after", BROADCAST)
    frame = await window.receive()
    assert frame["signal"] == "after"
    assert metrics.snapshot()["layer_messages_invalid"] == 4
    skipped = [r for r in caplog.records if r.name == "floorchannels.messages"]
    assert len(skipped) == 2, [r.getMessage() for r in skipped]  # once per kind
    assert "'frame' missing" in skipped[0].getMessage()
    await window.close()


async def test_a_newer_schema_version_is_refused(caplog):
    window = await open_window(make_key())
    message = {"type": "fc.deliver", "v": 2, "id": "x", "group": BROADCAST_GROUP, "frame": "{}"}
    await _send_to_group(BROADCAST_GROUP, message)
    await acall("after", BROADCAST)
    assert (await window.receive())["signal"] == "after"  # the v2 frame "{}" never came
    assert metrics.snapshot()["layer_messages_invalid"] == 1
    await window.close()


async def test_a_failing_message_handler_does_not_stop_the_hub(monkeypatch):
    def broken_handler(hub_, message):
        raise RuntimeError("bug in a handler")

    monkeypatch.setitem(hub.message_handlers, messages.REVOKE.name, broken_handler)
    window = await open_window(make_key())
    revoke = messages.REVOKE.build(group=BROADCAST_GROUP, session=None, reason="test")
    await _send_to_group(BROADCAST_GROUP, revoke)
    await acall("after", BROADCAST)
    assert (await window.receive())["signal"] == "after"
    assert metrics.snapshot()["hub_errors"] == 1
    await window.close()


async def test_a_failed_hub_start_is_retried_by_the_next_connect(flaky_layer):
    """Redis not up when the first window connects: that window is told 4500 (and
    retries); the next connect starts the hub again and is served."""
    flaky_layer.fail_new_channel = 1
    communicator = await connect_raw()
    await communicator.send_json_to({"type": "hello", "window_key": make_key(), "protocol": 1})
    assert await expect_close(communicator) == CloseCode.UNAVAILABLE
    window = await open_window(make_key())
    await acall("served", BROADCAST)
    assert (await window.receive())["signal"] == "served"
    assert metrics.snapshot()["hub_start_failures"] == 1
    await window.close()


async def test_a_refused_membership_is_rolled_back_and_probed(flaky_layer):
    """A group_add that fails must not leave the hub believing it carries that group: the
    next window in it must receive its messages. The outage path runs too: once the layer
    carries a probe again, open windows are told to resync."""
    first = await open_window(make_key())
    flaky_layer.fail_group_add, flaky_layer.failing_group = 1, layer_group(group_for_topic("room"))
    communicator = await connect_raw()
    await communicator.send_json_to({"type": "hello", "window_key": make_key(topics=["room"]), "protocol": 1})
    assert await expect_close(communicator) == CloseCode.UNAVAILABLE
    # At once, before the probe's periodic re-add could mend it: this join itself must
    # ask the layer for the room again.
    second = await open_window(make_key(topics=["room"]))
    await acall("in.room", "room")
    frame = await second.receive()
    while frame["type"] == "resync":
        frame = await second.receive()
    assert frame["signal"] == "in.room"
    resync = await first.receive(timeout=10)
    assert resync["type"] == "resync" and resync["reason"] == "layer_outage"
    assert metrics.snapshot()["layer_failures"] == 1
    await first.close()
    await second.close()


async def test_welcome_is_always_the_first_frame_while_messages_flow():
    """Live messages that reach a window while its hello is being answered wait for the
    welcome: a client can rely on welcome coming first."""
    stop = asyncio.Event()

    async def publish() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await acall("busy", BROADCAST, kwargs={"n": n})
            await asyncio.sleep(0)

    publisher = asyncio.ensure_future(publish())
    try:
        windows = [await open_window(make_key()) for _ in range(30)]  # asserts welcome first
        for window in windows:
            assert (await window.receive())["signal"] == "busy"
    finally:
        stop.set()
        await publisher
    for window in windows:
        await window.close()


class FakeSocket:
    def __init__(self) -> None:
        self.window_id = "w"
        self.joined_at = 0


def test_multi_group_deduplication_holds_groups_not_sockets():
    """A message to several groups reaches each socket once, and what the hub remembers
    per message is the groups it went to, whatever the number of sockets."""
    h = hub.Hub.__new__(hub.Hub)
    h.groups, h._recent, h._recent_groups, h._joins = {}, OrderedDict(), 0, 0
    many = [FakeSocket() for _ in range(1000)]
    for socket in many:
        h._joins += 1
        socket.joined_at = h._joins
    h.groups["a"], h.groups["b"] = set(many), set(many[:10])
    assert len(h._first_copies("m1", "a", h.groups["a"])) == 1000
    late = FakeSocket()
    h._joins += 1
    late.joined_at = h._joins
    h.groups["b"].add(late)  # joined after the first copy was delivered
    assert h._first_copies("m1", "b", h.groups["b"]) == [late]
    assert h._recent["m1"] == (["a", "b"], 1000)
    for n in range(hub.RECENT_IDS + 10):
        h._first_copies(f"x{n}", "a", set())
    assert len(h._recent) == hub.RECENT_IDS
    assert h._recent_groups <= hub.RECENT_GROUPS


class RecordingSocket(FakeSocket):
    """A member that keeps the frames it is handed, and can act when it is written to."""

    def __init__(self, on_write=None) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.on_write = on_write

    def deliver(self, items) -> None:
        self.texts.extend(item.text for item in items)
        if self.on_write is not None:
            self.on_write()


async def test_one_groups_messages_reach_every_member_in_order(monkeypatch):
    """A batch of one group's messages is written member by member as the group is walked:
    each member gets every live message once, in order; an expired one reaches nobody; a
    socket that leaves while the walk yields to the loop does not change who gets the
    batch, and one that joins then gets none of it."""
    monkeypatch.setattr(hub, "YIELD_EVERY", 3)  # the walk lets the loop run every 3 frames
    h = hub.Hub(InMemoryChannelLayer())
    h.channel_name = "floorchannels-hub.test"
    late = RecordingSocket()
    members = [RecordingSocket() for _ in range(6)]
    members[0].on_write = lambda: (h.leave(members[-1], ["g"]), h.groups["g"].add(late))
    for member in members:
        await h.join(member, ["g"])
    frames = [f'{{"n":{n}}}' for n in range(4)]
    batch = [{"group": "g", "frame": frame} for frame in frames]
    batch[2]["expires"] = 1.0  # long past
    expired_before = metrics.snapshot().get("expired", 0)
    await h.deliver_many(batch)
    for member in members:
        assert member.texts == [frames[0], frames[1], frames[3]]
    assert late.texts == []
    assert metrics.snapshot()["expired"] == expired_before + 1
    h.stop()


async def test_a_group_of_one_socket_is_a_tuple_until_a_second_joins():
    """A window's own group (and most users') has one socket: it costs a tuple, not a set,
    and membership still behaves as a set's would."""
    h = hub.Hub(InMemoryChannelLayer())
    h.channel_name = "floorchannels-hub.test"
    a, b = FakeSocket(), FakeSocket()
    await h.join(a, ["g", "solo"])
    assert h.groups["g"] == (a,) and h.groups["solo"] == (a,)
    await h.join(a, ["g"])  # joining again changes nothing
    assert sorted(map(id, h.groups["g"])) == [id(a)]
    await h.join(b, ["g"])
    assert h.groups["g"] == {a, b}
    h.leave(a, ["g", "solo"])
    h.leave(b, ["solo"])  # not a member: nothing happens
    assert h.groups["g"] == {b} and h.groups["solo"] == ()
    await h.sweep()
    assert "solo" not in h.groups and "g" in h.groups


async def test_waiting_for_a_turn_counts_against_the_call_timeout(settings):
    """With every call slot busy, a further call is answered `timeout` after CALL_TIMEOUT
    rather than waiting for the busy ones without limit."""
    settings.FLOORCHANNELS = {**settings.FLOORCHANNELS, "MAX_CONCURRENT_CALLS": 1, "CALL_TIMEOUT": 0.5}
    window = await open_window(make_key())
    await window.ws.send_json_to({"type": "call", "id": 1, "signal": "t.gate", "kwargs": {"name": "g"}})
    await signals.gate("g.entered").wait()
    await window.ws.send_json_to({"type": "call", "id": 2, "signal": "t.add", "kwargs": {"a": 1}})
    replies = {}
    for _ in range(2):
        reply = await window.receive(timeout=5)
        replies[reply["id"]] = reply
    assert replies[1]["error"]["code"] == "timeout"
    assert replies[2]["error"]["code"] == "timeout"
    await window.close()


async def test_too_many_requests_in_flight_are_refused_at_once(settings):
    settings.FLOORCHANNELS = {**settings.FLOORCHANNELS, "MAX_CONCURRENT_CALLS": 1, "RATE_LIMIT_BURST": 100}
    window = await open_window(make_key())
    for n in range(5):
        await window.ws.send_json_to({"type": "call", "id": n, "signal": "t.gate", "kwargs": {"name": "h"}})
    refused = await window.receive()
    assert refused["id"] == 4 and refused["error"]["code"] == "rate_limited"
    signals.gate("h").set()
    done = sorted([(await window.receive())["id"] for _ in range(4)])
    assert done == [0, 1, 2, 3]
    await window.close()
