"""Model changes from any code path publish the observing viewsets' events (observers.py)."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import transaction
from rest_framework.test import APIClient

from floorchannels.rest import publish_many, tracking
from tests.rest.conftest import events, subscribed
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db(transaction=True)


def actions(frames):
    return [(f["action"], f.get("data", {}).get("title")) for f in frames]


async def test_a_save_outside_any_viewset_reaches_the_members_only(team):
    alice, carol = await subscribed(team["alice"], "tasks"), await subscribed(team["carol"], "tasks")

    # What a management command, the admin or a task would do, step by step (data is
    # serialised at delivery, so each step is observed before the next).
    task = await sync_to_async(Task.objects.create)(project=team["one"], title="from the shell")
    assert actions(await events(alice)) == [("created", "from the shell")]

    def edit():
        with transaction.atomic():
            task.title = "renamed"
            task.save()
            task.done = True
            task.save()  # merged: one event per transaction

    await sync_to_async(edit)()
    [updated] = await events(alice)
    assert (updated["action"], updated["data"]["title"], updated["data"]["done"]) == (
        "updated",
        "renamed",
        True,
    )
    await sync_to_async(task.delete)()
    assert actions(await events(alice)) == [("deleted", None)]
    assert await events(carol) == []
    await alice.close()
    await carol.close()


async def test_a_viewset_write_on_an_observed_model_publishes_once(team):
    window = await subscribed(team["alice"], "tasks")
    client = APIClient()
    client.force_authenticate(team["bob"])
    response = await sync_to_async(client.post)(
        "/api/tasks/", {"project": team["one"].pk, "title": "via REST"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert actions(await events(window)) == [("created", "via REST")]
    await window.close()


async def test_many_to_many_changes_publish_updates(team):
    task = await sync_to_async(Task.objects.create)(project=team["one"], title="assign me")
    window = await subscribed(team["alice"], "tasks")
    bob = team["bob"]

    await sync_to_async(task.assignees.add)(bob)
    [added] = await events(window)
    await sync_to_async(bob.tasks.clear)()  # the reverse side, cleared
    [cleared] = await events(window)
    assert (added["action"], added["data"]["assignees"]) == ("updated", [bob.pk])
    assert (cleared["action"], cleared["data"]["assignees"]) == ("updated", [])
    await window.close()


async def test_a_cascade_delete_publishes_each_task(team):
    tasks = [await sync_to_async(Task.objects.create)(project=team["one"], title=f"t{i}") for i in range(3)]
    window = await subscribed(team["alice"], "tasks")
    await sync_to_async(team["one"].delete)()
    got = await events(window)
    assert sorted((f["action"], f["pk"]) for f in got) == sorted(("deleted", str(t.pk)) for t in tasks)
    await window.close()


async def test_bulk_create_and_bulk_update_publish_in_one_pass(team):
    window = await subscribed(team["alice"], "tasks")

    def bulk():
        with transaction.atomic():
            created = Task.objects.bulk_create(
                [Task(project=team["one"], title=f"bulk {i}") for i in range(20)]
            )
            publish_many(created, "created")
        for task in created:
            task.done = True
        Task.objects.bulk_update(created, ["done"])
        publish_many(created)
        return created

    created = await sync_to_async(bulk)()
    got = await events(window)
    assert [f["action"] for f in got] == ["created"] * 20 + ["updated"] * 20
    assert {f["pk"] for f in got} == {str(t.pk) for t in created}
    assert all(f["data"]["done"] for f in got[20:])
    await window.close()


async def test_tracking_a_queryset_update_tells_windows_an_object_left(team):
    """queryset.update() moves a task to project two: project one's members hear it left,
    project two's members hear it arrive."""
    task = await sync_to_async(Task.objects.create)(project=team["one"], title="moving")
    alice = await subscribed(team["alice"], "tasks")
    carol = await subscribed(team["carol"], "tasks")

    def move():
        with tracking(Task.objects.filter(pk=task.pk)) as tasks:
            tasks.update(project=team["two"])

    await sync_to_async(move)()
    assert [(f["action"], f["pk"]) for f in await events(alice)] == [("deleted", str(task.pk))]
    assert actions(await events(carol)) == [("created", "moving")]
    await alice.close()
    await carol.close()


async def test_a_save_that_moves_an_object_tells_its_old_partition(team):
    """pre_save reads the stored row, so the old project's windows hear the task left."""
    task = await sync_to_async(Task.objects.create)(project=team["one"], title="moving")
    alice = await subscribed(team["alice"], "tasks")

    def move():
        task.project = team["two"]
        task.save()

    await sync_to_async(move)()
    assert [(f["action"], f["pk"]) for f in await events(alice)] == [("deleted", str(task.pk))]
    await alice.close()


async def test_an_unrelated_model_save_publishes_nothing(team):
    window = await subscribed(team["alice"], "tasks")
    await sync_to_async(User.objects.create_user)("dave", password="x")
    assert await events(window) == []
    await window.close()
