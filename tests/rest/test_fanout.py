"""Many windows with mixed permissions: each receives exactly the events it may see."""

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from tests.rest.conftest import delivered, make_user, subscribe, window_of

pytestmark = pytest.mark.django_db(transaction=True)


async def test_100_windows_with_mixed_permissions():
    users = [await sync_to_async(make_user)(f"user{i}", can_use_notes=i < 8) for i in range(10)]
    windows = {}
    for user in users:
        for tab in range(10):
            window = await window_of(user)
            reply = await subscribe(window)
            assert reply["ok"] is (int(user.username[4:]) < 8), reply
            windows[(user.username, tab)] = window

    created = []  # (owner, text, shared)
    for user in users[:4]:
        client = APIClient()
        client.force_authenticate(user)
        for text, shared in (
            (f"{user.username}-private-1", False),
            (f"{user.username}-private-2", False),
            (f"{user.username}-shared", True),
        ):
            response = await sync_to_async(client.post)(
                "/api/notes/", {"text": text, "shared": shared}, format="json"
            )
            assert response.status_code == 201
            created.append((user.username, text, shared))

    # One marker behind the whole burst, then every window's frames up to a ping.
    received = await delivered(*windows.values())
    for (username, _tab), frames in zip(windows, received, strict=True):
        allowed = int(username[4:]) < 8
        expected = sorted(
            text for owner, text, shared in created if allowed and (shared or owner == username)
        )
        got = [f for f in frames if f["type"] == "event"]
        assert sorted(f["data"]["text"] for f in got) == expected, username
        assert all(f["action"] == "created" for f in got)
    for window in windows.values():
        await window.close()
