from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User

from tests.conftest import Window, make_key, open_window, session_headers


def make_user(name: str, can_use_notes: bool = True, **fields: Any) -> User:
    user = User.objects.create_user(name, password="x", **fields)
    if can_use_notes:
        user.user_permissions.add(Permission.objects.get(codename="view_note"))
    return user


@pytest.fixture
def users(db):
    return {name: make_user(name) for name in ("alice", "bob")}


async def window_of(user: Any) -> Window:
    """A window of ``user`` (None: an anonymous visitor)."""
    headers = await sync_to_async(session_headers)(user) if user is not None else []
    return await open_window(make_key(user), headers)


async def subscribe(
    window: Window, resource: str = "notes", pk: Any = None, sub_id: str = "s1"
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "subscribe", "id": sub_id, "resource": resource}
    if pk is not None:
        frame["pk"] = pk
    await window.ws.send_json_to(frame)
    reply = await window.receive(timeout=5)
    assert reply["type"] == "reply" and reply["id"] == sub_id, reply
    return reply


async def subscribed(user: Any, resource: str = "notes", pk: Any = None) -> Window:
    window = await window_of(user)
    reply = await subscribe(window, resource, pk)
    assert reply["ok"], reply
    return window


async def events(window: Window, quiet: float = 0.6) -> list[dict[str, Any]]:
    """Every event frame until the socket has been quiet for ``quiet`` seconds."""
    frames = []
    # receive_nothing, not a receive timeout: the communicator cancels the app on timeout.
    while not await window.ws.receive_nothing(timeout=quiet):
        frames.append(await window.receive())
    return [f for f in frames if f["type"] == "event"]
