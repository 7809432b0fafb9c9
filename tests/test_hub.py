"""The hub: delivery to the process's sockets, and its process-wide duties."""

import gc

import pytest

from floorchannels import BROADCAST, WINDOW, acall, hub
from floorchannels.windows import load_key
from tests.conftest import make_key, open_window


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
        assert await window.nothing()
        await window.close()
