"""Resource delivery holds bounded state, and each overflow is visible to the window or the
operator: a `resync`, a metric, a WARNING."""

import logging
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from floorchannels import messages, metrics
from floorchannels.hub import get_hub
from floorchannels.rest import delivery, publish
from floorchannels.rest.resources import partition_group
from tests.conftest import await_until
from tests.rest.conftest import delivered, events, subscribed
from tests.testapp.models import Note
from tests.testapp.views import NoteViewSet

pytestmark = pytest.mark.django_db(transaction=True)


def resource_message(note, group):
    return messages.RESOURCE.build(
        id=f"evt-{note.pk}", group=group, resource="notes", action="created", pk=str(note.pk)
    )


async def test_a_full_event_queue_drops_events_and_tells_their_windows_to_resync(users, caplog):
    alice, bob = users["alice"], users["bob"]
    alice_window, bob_window = await subscribed(alice), await subscribed(bob)
    notes = [await sync_to_async(Note.objects.create)(owner=alice, text=f"n{i}") for i in range(5)]
    hub = await get_hub()
    group = partition_group("notes", ("owner", alice.pk))
    with override_settings(FLOORCHANNELS={"RESOURCE_QUEUE_SIZE": 2}), caplog.at_level(logging.WARNING):
        # Five events at once, as a burst read off the layer: two fit, three do not.
        for note in notes:
            delivery.on_message(hub, resource_message(note, group))
        seen = [await alice_window.receive(timeout=10) for _ in range(3)]
        await await_until(lambda: "drained" in caplog.text, what="the queue to drain")
        # Drained: the marker behind them fits in the queue, and nothing else came.
        after, seen_by_bob = await delivered(alice_window, bob_window)
    assert seen[0] == {"type": "resync", "reason": "overloaded", "resource": "notes"}
    assert [f["type"] for f in seen[1:]] == ["event", "event"]  # one resync, then what fit
    assert after == []
    assert metrics.snapshot()["resource_events_dropped"] == 3
    assert "Resource event queue full" in caplog.text
    assert "3 event(s) were dropped" in caplog.text
    assert seen_by_bob == []  # not a recipient of those events: not told
    # After the overload the queue works as before.
    await sync_to_async(publish)(NoteViewSet, notes[0], "updated")
    assert [f["action"] for f in await events(alice_window)] == ["updated"]
    await alice_window.close()
    await bob_window.close()


async def test_events_cannot_grow_a_subscriptions_known_pks_past_the_bound(users, caplog):
    alice = users["alice"]
    with override_settings(FLOORCHANNELS={"MAX_TRACKED_PKS": 3}):
        window = await subscribed(alice)  # sees no note yet: records an empty set
        hub = await get_hub()
        (consumer,) = hub.groups[partition_group("notes", ("owner", alice.pk))]
        subscription = consumer.subscriptions["s1"]
        assert subscription.known == set()

        def create(n):
            for i in range(n):
                note = Note.objects.create(owner=alice, text=f"n{i}")
                publish(NoteViewSet, note, "created")

        with caplog.at_level(logging.WARNING, logger="floorchannels.rest"):
            await sync_to_async(create)(5)
            received = await events(window)
    assert [f["action"] for f in received] == ["created"] * 5  # delivery goes on
    assert subscription.known is None  # no longer recording, rather than growing
    assert metrics.snapshot()["tracked_pks_overflow"] == 1
    assert "MAX_TRACKED_PKS" in caplog.text
    await window.close()


async def test_the_deduplication_memory_is_bounded_in_windows_not_only_in_ids(monkeypatch):
    monkeypatch.setattr(delivery, "RECENT_WINDOWS", 50)
    state = delivery._HubState(SimpleNamespace(groups={}))
    try:
        windows = [object() for _ in range(10)]
        for n in range(30):
            message = {"id": f"m{n}", "multi": True}
            assert state.first_time(message, windows) == windows
            # A second copy of the newest event (another group) reaches nobody twice.
            assert state.first_time(message, windows) == []
            assert state.recent_windows == sum(len(seen) for seen in state.recent.values())
            assert state.recent_windows <= 50
        assert metrics.snapshot()["resource_dedup_evicted"] > 0
    finally:
        state.task.cancel()


async def test_a_failing_delivery_is_logged_and_the_next_event_still_arrives(users, monkeypatch, caplog):
    alice = users["alice"]
    window = await subscribed(alice)
    real = delivery.deliver
    failures = []

    async def flaky(hub, state, batch):
        if not failures:
            failures.append(batch[0]["id"])
            raise RuntimeError("database went away")
        await real(hub, state, batch)

    monkeypatch.setattr(delivery, "deliver", flaky)
    with caplog.at_level(logging.ERROR, logger="floorchannels.rest"):
        first = await sync_to_async(Note.objects.create)(owner=alice, text="lost")
        await sync_to_async(publish)(NoteViewSet, first, "created")
        await await_until(lambda: failures, what="the failing delivery")
        second = await sync_to_async(Note.objects.create)(owner=alice, text="kept")
        await sync_to_async(publish)(NoteViewSet, second, "created")
        received = await events(window)
    assert [f["data"]["text"] for f in received] == ["kept"]
    assert "database went away" in caplog.text
    await window.close()


async def test_an_event_over_max_message_size_becomes_a_resync(users, caplog):
    alice = users["alice"]
    window = await subscribed(alice)
    with override_settings(FLOORCHANNELS={"MAX_MESSAGE_SIZE": 300}), caplog.at_level(logging.ERROR):
        small = await sync_to_async(Note.objects.create)(owner=alice, text="small")
        await sync_to_async(publish)(NoteViewSet, small, "created")
        large = await sync_to_async(Note.objects.create)(owner=alice, text="x" * 400)
        await sync_to_async(publish)(NoteViewSet, large, "created")
        [seen] = await delivered(window)
    assert [f["type"] for f in seen] == ["event", "resync"]
    assert seen[1] == {"type": "resync", "reason": "overloaded", "resource": "notes"}
    assert metrics.snapshot()["resource_events_unsendable"] == 1
    assert "MAX_MESSAGE_SIZE" in caplog.text
    await window.close()
