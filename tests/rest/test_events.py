"""Resource events as subscribed windows observe them: after commit, merged, filtered per user."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.db import transaction
from django.test import override_settings
from rest_framework.test import APIClient

from floorchannels.rest import publish, publish_queryset
from tests.rest.conftest import events, make_user, subscribe, subscribed, window_of
from tests.testapp.models import Note
from tests.testapp.views import NoteViewSet

pytestmark = pytest.mark.django_db(transaction=True)


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def simplified(frames):
    return [(f["action"], f.get("data", {}).get("text")) for f in frames]


async def test_rest_create_update_delete_reach_the_owner(users):
    alice = users["alice"]
    window = await subscribed(alice)
    client = api(alice)
    response = await sync_to_async(client.post)("/api/notes/", {"text": "one"}, format="json")
    assert response.status_code == 201
    pk = response.json()["id"]
    frames = await events(window)
    await sync_to_async(client.patch)(f"/api/notes/{pk}/", {"text": "two"}, format="json")
    frames += await events(window)
    await sync_to_async(client.delete)(f"/api/notes/{pk}/")
    frames += await events(window)
    assert simplified(frames) == [("created", "one"), ("updated", "two"), ("deleted", None)]
    assert {f["pk"] for f in frames} == {str(pk)}
    assert frames[0]["data"] == {"id": pk, "owner_name": "alice", "text": "one", "shared": False}
    assert frames[0]["subscription"] == "s1" and frames[0]["resource"] == "notes"
    await window.close()


async def test_event_data_is_the_state_when_delivered(users):
    """Data is serialised for each recipient at delivery, so it is never older than the
    event: a burst of changes converges on the latest committed state."""
    alice = users["alice"]
    window = await subscribed(alice)
    client = api(alice)

    def burst():
        pk = client.post("/api/notes/", {"text": "one"}, format="json").json()["id"]
        client.patch(f"/api/notes/{pk}/", {"text": "two"}, format="json")

    await sync_to_async(burst)()
    frames = await events(window)
    assert [f["action"] for f in frames] == ["created", "updated"]
    assert frames[-1]["data"]["text"] == "two"
    await window.close()


async def test_rolled_back_transaction_sends_nothing(users):
    alice = users["alice"]
    window = await subscribed(alice)

    def create_and_fail():
        with transaction.atomic():
            note = Note.objects.create(owner=alice, text="ghost")
            publish(NoteViewSet, note, "created")
            raise RuntimeError("rollback")

    with pytest.raises(RuntimeError):
        await sync_to_async(create_and_fail)()
    assert await events(window) == []
    await window.close()


async def test_several_saves_in_one_transaction_send_one_event(users):
    alice = users["alice"]
    window = await subscribed(alice)

    def saves():
        with transaction.atomic():
            note = Note.objects.create(owner=alice, text="v1")
            publish(NoteViewSet, note, "created")
            for text in ("v2", "v3"):
                note.text = text
                note.save()
                publish(NoteViewSet, note, "updated")

    await sync_to_async(saves)()
    assert simplified(await events(window)) == [("created", "v3")]
    await window.close()


async def test_create_then_delete_in_one_transaction_sends_nothing(users):
    alice = users["alice"]
    window = await subscribed(alice)

    def create_delete():
        with transaction.atomic():
            note = Note.objects.create(owner=alice, text="brief")
            publish(NoteViewSet, note, "created")
            publish(NoteViewSet, note, "deleted")
            note.delete()

    await sync_to_async(create_delete)()
    assert await events(window) == []
    await window.close()


async def test_rolled_back_savepoint_keeps_the_outer_events(users):
    alice = users["alice"]
    window = await subscribed(alice)

    def nested():
        with transaction.atomic():
            kept = Note.objects.create(owner=alice, text="kept")
            publish(NoteViewSet, kept, "created")
            try:
                with transaction.atomic():
                    lost = Note.objects.create(owner=alice, text="lost")
                    publish(NoteViewSet, lost, "created")
                    raise RuntimeError
            except RuntimeError:
                pass

    await sync_to_async(nested)()
    assert simplified(await events(window)) == [("created", "kept")]
    await window.close()


async def test_private_objects_never_reach_other_users(users):
    alice, bob = users["alice"], users["bob"]
    alice_window, bob_window = await subscribed(alice), await subscribed(bob)
    response = await sync_to_async(api(alice).post)("/api/notes/", {"text": "private"}, format="json")
    pk = response.json()["id"]
    seen_by_alice = await events(alice_window)
    await sync_to_async(api(alice).delete)(f"/api/notes/{pk}/")
    seen_by_alice += await events(alice_window)
    assert [f["action"] for f in seen_by_alice] == ["created", "deleted"]
    assert await events(bob_window) == []  # not even the pk
    await alice_window.close()
    await bob_window.close()


async def test_shared_objects_reach_everyone_allowed(users):
    alice, bob = users["alice"], users["bob"]
    carol = await sync_to_async(make_user)("carol", can_use_notes=False)
    windows = [await subscribed(alice), await subscribed(bob), await window_of(carol)]
    reply = await subscribe(windows[2])
    assert reply["error"]["code"] == "forbidden"
    await sync_to_async(api(alice).post)("/api/notes/", {"text": "for all", "shared": True}, format="json")
    assert simplified(await events(windows[0])) == [("created", "for all")]
    assert simplified(await events(windows[1])) == [("created", "for all")]
    assert await events(windows[2]) == []
    for window in windows:
        await window.close()


async def test_moving_an_object_to_another_owner(users):
    alice, bob = users["alice"], users["bob"]
    note = await sync_to_async(Note.objects.create)(owner=alice, text="mine")
    alice_window, bob_window = await subscribed(alice), await subscribed(bob)

    def give_to_bob():
        with transaction.atomic():
            view = NoteViewSet()
            before = view.get_live_partitions(note)
            note.owner = bob
            note.text = "now bob's"
            note.save()
            publish(view, note, "updated", partitions_before=before)

    await sync_to_async(give_to_bob)()
    assert [(f["action"], f["pk"], "data" in f) for f in await events(alice_window)] == [
        ("deleted", str(note.pk), False)
    ]
    assert simplified(await events(bob_window)) == [("created", "now bob's")]
    await alice_window.close()
    await bob_window.close()


async def test_revoked_access_stops_the_data(users):
    alice, bob = users["alice"], users["bob"]
    bob_window = await subscribed(bob)
    client = api(alice)
    await sync_to_async(client.post)("/api/notes/", {"text": "first", "shared": True}, format="json")
    assert simplified(await events(bob_window)) == [("created", "first")]

    def revoke():
        bob.user_permissions.remove(Permission.objects.get(codename="view_note"))

    await sync_to_async(revoke)()
    await sync_to_async(client.post)("/api/notes/", {"text": "second", "shared": True}, format="json")
    assert await events(bob_window) == []
    await bob_window.close()


async def test_the_sender_window_gets_its_own_change_marked_echo(users):
    """A page's own write reaches its own list once, marked, so it can tell it from others'."""
    alice = users["alice"]
    sender, other_tab = await subscribed(alice), await subscribed(alice)
    await sync_to_async(api(alice).post)(
        "/api/notes/",
        {"text": "typed here"},
        format="json",
        HTTP_X_FLOORCHANNELS_WINDOW=sender.welcome["window_id"],
    )
    [own] = await events(sender)
    [other] = await events(other_tab)
    assert (own["action"], own["data"]["text"], own.get("echo")) == ("created", "typed here", True)
    assert (other["action"], other["data"]["text"], "echo" in other) == ("created", "typed here", False)
    await sender.close()
    await other_tab.close()


async def test_the_window_header_cannot_name_another_users_window(users):
    """Window ids are public (presence lists them): naming bob's window from alice's request
    marks nothing in bob's window."""
    alice, bob = users["alice"], users["bob"]
    bob_window = await subscribed(bob)
    await sync_to_async(api(alice).post)(
        "/api/notes/",
        {"text": "shared by alice", "shared": True},
        format="json",
        HTTP_X_FLOORCHANNELS_WINDOW=bob_window.welcome["window_id"],
    )
    [event] = await events(bob_window)
    assert (event["action"], event["data"]["text"], "echo" in event) == ("created", "shared by alice", False)
    await bob_window.close()


async def test_object_subscription(users):
    alice, bob = users["alice"], users["bob"]
    mine = await sync_to_async(Note.objects.create)(owner=alice, text="a")
    other = await sync_to_async(Note.objects.create)(owner=alice, text="b")
    window = await subscribed(alice, pk=mine.pk)
    client = api(alice)
    await sync_to_async(client.patch)(f"/api/notes/{other.pk}/", {"text": "b2"}, format="json")
    await sync_to_async(client.patch)(f"/api/notes/{mine.pk}/", {"text": "a2"}, format="json")
    assert simplified(await events(window)) == [("updated", "a2")]
    bob_window = await window_of(bob)
    assert (await subscribe(bob_window, pk=mine.pk))["error"]["code"] == "not_found"
    await window.close()
    await bob_window.close()


async def test_id_only_resource(users):
    alice = users["alice"]
    window = await subscribed(alice, "note-ids")
    response = await sync_to_async(api(alice).post)("/api/notes/", {"text": "secret"}, format="json")
    # Published through NoteViewSet, so note-ids subscribers need their own publish.
    note = await sync_to_async(Note.objects.get)(pk=response.json()["id"])
    from tests.testapp.views import NoteIdViewSet

    await sync_to_async(publish)(NoteIdViewSet, note, "created")
    frames = await events(window)
    assert [(f["action"], f["pk"], "data" in f) for f in frames] == [("created", str(note.pk), False)]
    await window.close()


async def test_publish_queryset_after_update(users):
    alice = users["alice"]
    await sync_to_async(Note.objects.bulk_create)([Note(owner=alice, text=str(i)) for i in range(3)])
    window = await subscribed(alice)

    def bulk():
        Note.objects.filter(owner=alice).update(text="bulk")
        publish_queryset(NoteViewSet, Note.objects.filter(owner=alice))

    await sync_to_async(bulk)()
    assert simplified(await events(window)) == [("updated", "bulk")] * 3
    await window.close()


async def test_subscription_errors(users):
    window = await window_of(users["alice"])
    assert (await subscribe(window, "nope", sub_id="a"))["error"]["code"] == "unknown_resource"
    assert (await subscribe(window, "staff-notes", sub_id="b"))["error"]["code"] == "forbidden"
    await window.ws.send_json_to({"type": "subscribe", "id": "c", "resource": ["notes"]})
    assert (await window.receive())["error"]["code"] == "invalid_frame"
    with override_settings(FLOORCHANNELS={"MAX_SUBSCRIPTIONS": 1}):
        assert (await subscribe(window, sub_id="d"))["ok"]
        assert (await subscribe(window, sub_id="e"))["error"]["code"] == "too_many_subscriptions"
    anonymous = await window_of(None)
    assert (await subscribe(anonymous))["error"]["code"] == "forbidden"
    await window.close()
    await anonymous.close()


async def test_unsubscribe_stops_events(users):
    alice = users["alice"]
    window = await subscribed(alice)
    await window.ws.send_json_to({"type": "unsubscribe", "id": "u1", "subscription": "s1"})
    assert (await window.receive())["ok"]
    await sync_to_async(api(alice).post)("/api/notes/", {"text": "x"}, format="json")
    assert await events(window) == []
    await window.close()
