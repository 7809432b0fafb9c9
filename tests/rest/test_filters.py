"""Filtered and nested subscriptions: the viewset's own filter backends and URL kwargs decide,
exactly as a GET with those query parameters would."""

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from tests.rest.conftest import events, subscribe, subscribed, window_of
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db(transaction=True)


def rest_list(user, url):
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(url)
    assert response.status_code == 200, response.content
    return {str(item["id"]) for item in response.json()}


async def test_a_filtered_subscription_hears_only_objects_inside_its_filter(team):
    one, two = team["one"], team["two"]
    await sync_to_async(two.members.add)(team["alice"])
    window = await subscribed(team["alice"], "tasks", params={"project": one.pk, "done": False})
    inside = await sync_to_async(Task.objects.create)(project=one, title="inside")
    await sync_to_async(Task.objects.create)(project=two, title="other project")
    await sync_to_async(Task.objects.create)(project=one, title="done already", done=True)
    assert [(f["action"], f["data"]["title"]) for f in await events(window)] == [("created", "inside")]

    # Marked done: it leaves the filter, so the subscription hears it is gone.
    inside.done = True
    await sync_to_async(inside.save)()
    assert [(f["action"], f["pk"]) for f in await events(window)] == [("deleted", str(inside.pk))]
    # Undone: back inside.
    inside.done = False
    await sync_to_async(inside.save)()
    assert [(f["action"], f["pk"]) for f in await events(window)] == [("created", str(inside.pk))]
    # What the window was told equals the GET with the same parameters.
    url = f"/api/tasks/?project={one.pk}&done=false"
    assert await sync_to_async(rest_list)(team["alice"], url) == {str(inside.pk)}
    await window.close()


async def test_parameters_a_filter_backend_refuses_are_an_invalid_arguments_reply(team):
    window = await window_of(team["alice"])
    reply = await subscribe(window, "tasks", params={"project": "not-a-number"})
    assert (reply["ok"], reply["error"]["code"]) == (False, "invalid_arguments")
    assert "project" in reply["error"]["message"]
    await window.close()


@pytest.mark.parametrize(
    "query",
    [
        {"params": ["not", "an", "object"]},
        {"params": {"project": {"nested": 1}}},
        {"kwargs": {"project_pk": [1, 2]}},
        {"params": {f"k{i}": i for i in range(40)}},
        {"params": {"q": "x" * 5000}},
    ],
)
async def test_malformed_params_or_kwargs_get_an_invalid_frame_reply(team, query):
    window = await window_of(team["alice"])
    reply = await subscribe(window, "tasks", **query)
    assert (reply["ok"], reply["error"]["code"]) == (False, "invalid_frame")
    # The socket is still usable.
    assert (await subscribe(window, "tasks", sub_id="s2"))["ok"]
    await window.close()


async def test_a_nested_route_subscription_uses_the_url_kwargs(team):
    one, two = team["one"], team["two"]
    window = await subscribed(team["alice"], "project-tasks", kwargs={"project_pk": one.pk})
    await sync_to_async(Task.objects.create)(project=one, title="in one")
    await sync_to_async(Task.objects.create)(project=two, title="in two")
    got = await events(window)
    assert [(f["action"], f["data"]["title"]) for f in got] == [("created", "in one")]
    await window.close()


async def test_a_nested_route_of_a_project_the_user_is_not_in_shows_nothing(team):
    """Like the GET (an empty list), the subscription is accepted and never hears a thing."""
    two = team["two"]
    window = await subscribed(team["alice"], "project-tasks", kwargs={"project_pk": two.pk})
    await sync_to_async(Task.objects.create)(project=two, title="carol's")
    assert await events(window) == []
    assert await sync_to_async(rest_list)(team["alice"], f"/api/projects/{two.pk}/tasks/") == set()
    await window.close()
