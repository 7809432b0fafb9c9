from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User

from floorchannels.rest import publish
from tests.conftest import Window, frames_before_pong, make_key, open_window, session_headers
from tests.testapp.models import Note, Project
from tests.testapp.views import NoteViewSet


def make_user(name: str, can_use_notes: bool = True, **fields: Any) -> User:
    user = User.objects.create_user(name, password="x", **fields)
    if can_use_notes:
        user.user_permissions.add(Permission.objects.get(codename="view_note"))
    return user


@pytest.fixture
def users(db):
    return {name: make_user(name) for name in ("alice", "bob")}


@pytest.fixture
def team(db):
    """alice and bob in project "one", carol in project "two"."""
    alice, bob, carol = (make_user(name) for name in ("alice", "bob", "carol"))
    one, two = Project.objects.create(name="one"), Project.objects.create(name="two")
    one.members.add(alice, bob)
    two.members.add(carol)
    return {"alice": alice, "bob": bob, "carol": carol, "one": one, "two": two}


async def window_of(user: Any) -> Window:
    """A window of ``user`` (None: an anonymous visitor)."""
    headers = await sync_to_async(session_headers)(user) if user is not None else []
    return await open_window(make_key(user), headers)


async def subscribe(
    window: Window, resource: str = "notes", pk: Any = None, sub_id: str = "s1", **query: Any
) -> dict[str, Any]:
    """Send a subscribe frame (``query``: its ``params`` and ``kwargs``) and return the reply."""
    frame: dict[str, Any] = {"type": "subscribe", "id": sub_id, "resource": resource, **query}
    if pk is not None:
        frame["pk"] = pk
    await window.ws.send_json_to(frame)
    reply = await window.receive(timeout=5)
    assert reply["type"] == "reply" and reply["id"] == sub_id, reply
    return reply


async def subscribed(user: Any, resource: str = "notes", pk: Any = None, **query: Any) -> Window:
    window = await window_of(user)
    reply = await subscribe(window, resource, pk, **query)
    assert reply["ok"], reply
    return window


class _Marker:
    """A window of its own, subscribed to a note of its own, for :func:`delivered`."""

    def __init__(self, window: Window, note: Note) -> None:
        self.window, self.note = window, note


#: This test's marker, made on first use (its user and note are then in the database).
_slot: dict[str, _Marker] = {}


@pytest.fixture(autouse=True)
async def _close_the_marker():
    _slot.clear()
    yield
    marker = _slot.pop("marker", None)
    if marker is not None:
        await marker.window.close()


async def _marker() -> _Marker:
    marker = _slot.get("marker")
    if marker is None:

        def create() -> tuple[Any, Note]:
            user = make_user("delivery-marker")
            return user, Note.objects.create(owner=user, text="marker")

        user, note = await sync_to_async(create)()
        marker = _slot["marker"] = _Marker(await subscribed(user, pk=note.pk), note)
    return marker


async def delivered(*windows: Window, timeout: float = 10) -> list[list[dict[str, Any]]]:
    """For each of ``windows``, every frame it was sent by now, resource events included.

    Resource events reach windows through one delivery queue per process
    (floorchannels/rest/delivery.py), not in order with other layer messages: a BROADCAST
    marker says nothing about them. So the marker is itself a resource event, on a note
    only the marker window sees, published (through the layer, like any event) after those
    under test: the queue delivers it behind them. Once the marker window has it, their
    frames are written; a ping round trip on each window then reads them all.
    """
    marker = await _marker()
    await sync_to_async(publish)(NoteViewSet, marker.note, "updated")
    frame = await marker.window.receive(timeout)
    assert (frame["type"], frame.get("pk")) == ("event", str(marker.note.pk)), frame
    return [await frames_before_pong(window, timeout) for window in windows]


async def events(window: Window) -> list[dict[str, Any]]:
    """The event frames ``window`` was sent by now (see :func:`delivered`)."""
    [frames] = await delivered(window)
    return [f for f in frames if f["type"] == "event"]
