"""The hub's process-wide duties."""

import gc

from floorchannels import hub


def test_the_first_connection_freezes_start_up_objects(monkeypatch, settings):
    """Full collections then skip the project's start-up objects (shorter loop pauses)."""
    monkeypatch.setattr(hub, "_frozen", False)
    settings.FLOORCHANNELS = {"GC_FREEZE": False}
    before = gc.get_freeze_count()
    hub._freeze_startup_objects()
    assert gc.get_freeze_count() == before

    settings.FLOORCHANNELS = {"GC_FREEZE": True}
    hub._freeze_startup_objects()
    frozen = gc.get_freeze_count()
    assert frozen > before
    hub._freeze_startup_objects()  # once per process
    assert gc.get_freeze_count() == frozen
