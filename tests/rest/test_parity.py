"""What a window receives equals what a GET by its user returns: serializer context from the
socket's own handshake, visibility from the viewset's filter backends (django-guardian)."""

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.test import override_settings
from guardian.shortcuts import assign_perm, remove_perm
from rest_framework.test import APIClient

from tests.asgi import application
from tests.conftest import WS_PATH, Window, make_key, session_headers
from tests.rest.conftest import events, subscribe, subscribed
from tests.testapp.models import Document, Task

pytestmark = pytest.mark.django_db(transaction=True)


async def window_at(user: Any, scheme: str, headers: list[tuple[bytes, bytes]]) -> Window:
    """A window whose handshake came with ``scheme`` and ``headers`` (Host, X-Forwarded-*)."""
    cookie = await sync_to_async(session_headers)(user)
    communicator = WebsocketCommunicator(application, WS_PATH, headers=[*headers, *cookie])
    communicator.scope["scheme"] = scheme
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "hello", "window_key": make_key(user), "protocol": 1})
    welcome = await communicator.receive_json_from(timeout=5)
    assert welcome["type"] == "welcome", welcome
    return Window(communicator, welcome)


def rest_get(user, url, **extra):
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(url, **extra)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize(
    ("scheme", "headers", "settings", "get"),
    [
        # A page on https://testserver:8443: the port and the scheme carry over.
        ("wss", [(b"host", b"testserver:8443")], {}, {"HTTP_HOST": "testserver:8443", "secure": True}),
        ("ws", [(b"host", b"localhost:18390")], {}, {"HTTP_HOST": "localhost:18390"}),
        # Behind a TLS-terminating proxy that Django is told to trust.
        (
            "ws",
            [(b"host", b"testserver"), (b"x-forwarded-proto", b"https")],
            {"SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")},
            {"HTTP_HOST": "testserver", "HTTP_X_FORWARDED_PROTO": "https"},
        ),
        (
            "ws",
            [(b"host", b"127.0.0.1:8000"), (b"x-forwarded-host", b"localhost:9443")],
            {"USE_X_FORWARDED_HOST": True},
            {"HTTP_HOST": "127.0.0.1:8000", "HTTP_X_FORWARDED_HOST": "localhost:9443"},
        ),
    ],
)
async def test_hyperlinks_in_live_data_equal_the_rest_apis(team, scheme, headers, settings, get):
    with override_settings(**settings):
        window = await window_at(team["alice"], scheme, headers)
        assert (await subscribe(window, "tasks"))["ok"]
        task = await sync_to_async(Task.objects.create)(project=team["one"], title="linked")
        [event] = await events(window)
        expected = await sync_to_async(rest_get)(team["alice"], f"/api/tasks/{task.pk}/", **get)
    assert event["data"] == expected
    assert event["data"]["url"].startswith(
        "https://" if "https" in str(get) or get.get("secure") else "http://"
    )
    await window.close()


async def test_a_filter_backend_alone_decides_who_hears_about_a_document(team):
    """Visibility enforced only by ObjectPermissionsFilter (django-guardian): events follow
    the per-object permission as it is granted and revoked, and match the REST list."""
    alice, bob = team["alice"], team["bob"]
    alice_window, bob_window = await subscribed(alice, "documents"), await subscribed(bob, "documents")

    def create():
        # One transaction: the event leaves after the commit, when the permission exists
        # (in autocommit it could be delivered before assign_perm ran, and rightly hidden).
        with transaction.atomic():
            document = Document.objects.create(title="plan")
            assign_perm("testapp.view_document", alice, document)
        return document

    document = await sync_to_async(create)()
    assert [(f["action"], f["data"]["title"]) for f in await events(alice_window)] == [("created", "plan")]
    assert await events(bob_window) == []

    await sync_to_async(remove_perm)("testapp.view_document", alice, document)
    document.title = "plan v3"
    await sync_to_async(document.save)()
    assert [(f["action"], f["pk"]) for f in await events(alice_window)] == [("deleted", str(document.pk))]
    assert await events(bob_window) == []

    await sync_to_async(assign_perm)("testapp.view_document", bob, document)
    document.title = "plan v4"
    await sync_to_async(document.save)()
    assert [(f["action"], f["data"]["title"]) for f in await events(bob_window)] == [("created", "plan v4")]
    assert await events(alice_window) == []
    assert await sync_to_async(rest_get)(alice, "/api/documents/") == []
    assert await sync_to_async(rest_get)(bob, "/api/documents/") == [{"id": document.pk, "title": "plan v4"}]
    await alice_window.close()
    await bob_window.close()


async def test_a_deactivated_user_hears_nothing_more(team):
    """Deactivating a user closes their sockets (4403); no event about later changes reaches
    them in between."""
    alice = team["alice"]
    window = await subscribed(alice, "tasks")

    def deactivate_then_change():
        alice.is_active = False
        alice.save()
        Task.objects.create(project=team["one"], title="after")

    await sync_to_async(deactivate_then_change)()
    frames = []
    while (frame := await window.frame_or_close(10))["type"] != "websocket.close":
        frames.append(frame)
    assert frame["code"] == 4403
    assert [f for f in frames if f["type"] == "event"] == []
