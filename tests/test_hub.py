"""The hub's process-wide duties."""

import gc

import pytest

from floorchannels import hub


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
