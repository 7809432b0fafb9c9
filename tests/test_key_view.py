"""The key view (floorchannels.urls) and the sockets its keys open: session with CSRF, JWT,
HTTP Basic (any other DRF class), anonymous; the KEY_TOPICS hook; close reasons; one socket
per window. DRF tokens and knox are in tests/e2e/test_token_clients.py, whose project
installs their apps."""

import asyncio
import base64
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory, override_settings
from django.urls import include, path
from rest_framework_simplejwt.tokens import AccessToken

from floorchannels import acall
from floorchannels.protocol import CloseCode
from floorchannels.topics import serialize_topic
from floorchannels.windows import load_key
from tests.conftest import connect_raw, frames_before_pong, open_window, session_headers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.test_key_view")]

urlpatterns = [path("floorchannels/", include("floorchannels.urls"))]

KEY_URL = "/floorchannels/key/"
JWT_AUTH = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ]
}


def grant_rooms(request):
    """A KEY_TOPICS hook: a signed-in user gets their room and is present there."""
    if not request.user.is_authenticated:
        return {"topics": ["lobby"]}
    return {"topics": ["lobby"], "presence": [f"room-{request.user.username}"]}


@pytest.fixture
def alice():
    return User.objects.create_user("alice", password="alice-pass")


def post(client: Client | None = None, **headers):
    return (client or Client()).post(KEY_URL, headers=headers)


async def apost(client: Client | None = None, **headers):
    return await sync_to_async(post)(client, **headers)


def csrf_cookie(client: Client) -> str:
    """Give ``client`` the CSRF cookie a page of the site would have set; return its token."""
    token = get_token(RequestFactory().get("/"))
    client.cookies[settings.CSRF_COOKIE_NAME] = token
    return token


async def closed(communicator) -> dict:
    """The close message the server sent (its code and reason)."""
    message = await communicator.receive_output(timeout=10)
    assert message["type"] == "websocket.close", message
    return message


# Anonymous, methods ------------------------------------------------------------------------


async def test_anonymous_client_gets_a_key_for_an_anonymous_window():
    before = time.time()
    response = await apost()
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"window_key", "url", "expires", "protocol"}
    assert body["url"] == "/ws/floorchannels/" and body["protocol"] == 2
    assert before + 3600 - 2 <= body["expires"] <= time.time() + 3600
    window = await open_window(body["window_key"])
    assert (await window.call("t.auth"))["error"]["code"] == "forbidden"
    assert (await window.call("t.echo", x=1))["result"]["kwargs"] == {"x": 1}
    await window.close()


def test_only_post_issues_keys():
    response = Client().get(KEY_URL)
    assert response.status_code == 405
    assert response["Allow"] == "POST, OPTIONS"
    assert "window_key" not in response.json()


# Session -----------------------------------------------------------------------------------


def test_session_post_without_csrf_token_is_refused(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = post(client)
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_without_drf_the_csrf_refusal_gives_djangos_reason(alice):
    """floorchannels.views._CsrfCheck overrides CsrfViewMiddleware._reject (private): if Django
    renames it, the reason below becomes a response's repr and this fails."""
    from django.middleware.csrf import REASON_NO_CSRF_COOKIE

    from floorchannels.views import _enforce_csrf, _Refused

    request = RequestFactory().post("/floorchannels/key/")
    request.user = alice
    with pytest.raises(_Refused) as refused:
        _enforce_csrf(request)
    assert refused.value.detail == f"CSRF Failed: {REASON_NO_CSRF_COOKIE}"


def test_session_post_without_csrf_is_refused_without_drf_session_class(alice):
    """The project's DRF classes do not include SessionAuthentication: the session still
    authenticates the key view, with Django's CSRF check."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    with override_settings(
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"]
        }
    ):
        assert post(client).status_code == 403
        token = csrf_cookie(client)
        response = post(client, X_CSRFToken=token)
    assert response.status_code == 200
    assert load_key(response.json()["window_key"]).user_pk == str(alice.pk)


async def test_session_key_opens_a_socket_with_that_session_only(alice):
    client = Client(enforce_csrf_checks=True)
    await sync_to_async(client.force_login)(alice)
    token = csrf_cookie(client)
    response = await apost(client, X_CSRFToken=token)
    assert response.status_code == 200
    key = response.json()["window_key"]
    # Without the session cookie the key opens nothing: it was issued to the session.
    ws = await connect_raw()
    await ws.send_json_to({"type": "hello", "window_key": key, "protocol": 1})
    message = await closed(ws)
    assert message["code"] == CloseCode.KEY_REFUSED
    assert message["reason"] == "key was issued to another user or the session has ended"
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    window = await open_window(key, [(b"cookie", cookie)])
    assert (await window.call("t.auth"))["result"] == "alice"
    await window.close()


# JWT ---------------------------------------------------------------------------------------


@override_settings(REST_FRAMEWORK=JWT_AUTH)
async def test_jwt_client_connects_without_a_cookie_and_gets_user_pushes(alice):
    from floorchannels import USER

    token = await sync_to_async(AccessToken.for_user)(alice)
    response = await apost(Authorization=f"Bearer {token}")
    assert response.status_code == 200, response.content
    key = response.json()["window_key"]
    assert str(token) not in key and token["jti"] not in load_key(key).credential.digest
    assert response.json()["expires"] <= token["exp"]
    window = await open_window(key)
    assert (await window.call("t.auth"))["result"] == "alice"
    await acall("t.pushed", USER(alice), kwargs={"n": 1})
    frame = await window.receive(timeout=5)
    assert frame["signal"] == "t.pushed" and frame["kwargs"] == {"n": 1}
    await window.close()


@override_settings(REST_FRAMEWORK=JWT_AUTH)
async def test_invalid_jwt_is_a_401_not_an_anonymous_key():
    response = await apost(Authorization="Bearer not-a-token")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "window_key" not in response.json()


@override_settings(
    REST_FRAMEWORK=JWT_AUTH,
    FLOORCHANNELS={"WINDOW_KEY_MAX_AGE": 60, "WINDOW_KEY_REFRESH_AFTER": 0.001, "GROUP_SWEEP_INTERVAL": 0.2},
)
async def test_jwt_socket_closes_with_4410_at_the_tokens_expiry_and_is_never_refreshed_past_it(alice):
    token = await sync_to_async(AccessToken.for_user)(alice)
    token.set_exp(lifetime=timedelta(seconds=3))
    response = await apost(Authorization=f"Bearer {token}")
    body = response.json()
    assert body["expires"] == int(token["exp"])
    window = await open_window(body["window_key"])
    assert window.welcome["key_expires"] == token["exp"]
    # Refreshes are due every 0.06 s, but none may carry the key past the token: the next
    # thing the socket sees is its close, at the token's expiry.
    message = await window.ws.receive_output(timeout=15)
    assert message["type"] == "websocket.close", message
    assert message["code"] == CloseCode.EXPIRED_KEY
    assert message["reason"] == "the token this window key was issued for has expired"
    assert time.time() >= token["exp"] - 0.05
    # And the key opens nothing now.
    ws = await connect_raw()
    await ws.send_json_to({"type": "hello", "window_key": body["window_key"], "protocol": 1})
    message = await closed(ws)
    assert (message["code"], message["reason"]) == (
        CloseCode.EXPIRED_KEY,
        "the token this window key was issued for has expired",
    )


# Any other DRF authentication: bound to the user ------------------------------------------


@override_settings(REST_FRAMEWORK=JWT_AUTH)
async def test_basic_auth_key_holds_until_the_password_changes(alice):
    basic = base64.b64encode(b"alice:alice-pass").decode()
    key = (await apost(Authorization=f"Basic {basic}")).json()["window_key"]
    window = await open_window(key)
    assert (await window.call("t.auth"))["result"] == "alice"

    def change_password():
        alice.set_password("new-pass")
        alice.save()

    await sync_to_async(change_password)()
    message = await closed(window.ws)
    assert message["code"] == CloseCode.KEY_REFUSED
    assert message["reason"] == "the user's password changed or the user was deactivated"
    ws = await connect_raw()
    await ws.send_json_to({"type": "hello", "window_key": key, "protocol": 1})
    message = await closed(ws)
    assert (message["code"], message["reason"]) == (
        CloseCode.KEY_REFUSED,
        "the user's password changed or the user was deactivated",
    )


# KEY_TOPICS --------------------------------------------------------------------------------


@override_settings(
    REST_FRAMEWORK=JWT_AUTH,
    FLOORCHANNELS={"KEY_TOPICS": "tests.test_key_view.grant_rooms", "GROUP_SWEEP_INTERVAL": 0.2},
)
async def test_key_topics_hook_decides_what_a_key_grants(alice):
    anonymous = load_key((await apost()).json()["window_key"])
    assert anonymous.topics == (serialize_topic("lobby"),) and anonymous.presence == ()
    token = await sync_to_async(AccessToken.for_user)(alice)
    # Whatever the body asks for, the hook decides.
    client = Client()
    response = await sync_to_async(client.post)(
        KEY_URL,
        {"topics": ["room-bob"]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    window = load_key(response.json()["window_key"])
    room = serialize_topic("room-alice")
    assert window.topics == (serialize_topic("lobby"), room) and window.presence == (room,)


@override_settings(FLOORCHANNELS={"KEY_TOPICS": "tests.test_key_view.KEY_URL"})
def test_a_hook_that_returns_nonsense_fails_loudly():
    from django.core.exceptions import ImproperlyConfigured

    from floorchannels.checks import check_key_settings

    assert [e.id for e in check_key_settings()] == ["floorchannels.E011"]
    with pytest.raises((ImproperlyConfigured, TypeError)):
        Client(raise_request_exception=True).post(KEY_URL)


# One socket per window ---------------------------------------------------------------------


async def test_a_second_socket_with_the_same_key_replaces_the_first():
    key = (await apost()).json()["window_key"]
    first = await open_window(key)
    second = await open_window(key)
    message = await closed(first.ws)
    assert message["code"] == CloseCode.REPLACED
    assert message["reason"] == "replaced by a newer connection of this window"
    assert second.welcome["window_id"] == first.welcome["window_id"]
    assert await frames_before_pong(second) == []
    assert (await second.call("t.echo", x=2))["result"]["kwargs"] == {"x": 2}
    await second.close()


async def test_the_older_of_two_announcements_closes_nothing():
    """Two sockets of one window whose announcements cross: only the later hello stays."""
    from floorchannels import messages
    from floorchannels.hub import get_hub
    from floorchannels.revocation import REPLACE, on_replaced
    from floorchannels.topics import window_group

    key = (await apost()).json()["window_key"]
    window = await open_window(key)
    group = window_group(window.welcome["window_id"])
    hub = await get_hub()
    older = REPLACE.build(group=group, keep="elsewhere#1", at=time.time() - 60)
    assert messages.check(older) is REPLACE
    on_replaced(hub, older)
    assert await frames_before_pong(window) == []
    newer = REPLACE.build(group=group, keep="elsewhere#2", at=time.time() + 1)
    on_replaced(hub, newer)
    assert (await closed(window.ws))["code"] == CloseCode.REPLACED


async def test_announcements_made_together_leave_together(monkeypatch):
    """A reconnect storm: each window is announced, in far fewer layer messages than
    sockets, and a window opened twice in it still keeps only its newest socket."""
    from floorchannels import revocation

    sent = []
    real_send = revocation.group_send

    async def counting_send(layer, group, message):
        sent.append(len(message["windows"]))
        await real_send(layer, group, message)

    monkeypatch.setattr(revocation, "group_send", counting_send)
    keys = [(await apost()).json()["window_key"] for _ in range(40)]
    windows = await asyncio.gather(*(open_window(key) for key in keys))
    again = await open_window(keys[0])
    assert (await closed(windows[0].ws))["code"] == CloseCode.REPLACED
    await asyncio.gather(*(frames_before_pong(w) for w in windows[1:]))  # the others are open
    assert sum(sent) == 41
    assert len(sent) < 41, sent
    for window in [again, *windows[1:]]:
        await window.close()


async def test_a_malformed_announcement_is_skipped_and_the_rest_applied():
    from floorchannels import messages, metrics
    from floorchannels.hub import get_hub
    from floorchannels.revocation import REPLACE_MANY, on_replaced_many
    from floorchannels.topics import window_group

    key = (await apost()).json()["window_key"]
    window = await open_window(key)
    group = window_group(window.welcome["window_id"])
    hub = await get_hub()
    before = metrics.snapshot().get("layer_messages_invalid", 0)
    message = REPLACE_MANY.build(windows=[["only", "two"], 7, [group, "elsewhere#9", time.time() + 1]])
    assert messages.check(message) is REPLACE_MANY
    on_replaced_many(hub, message)
    assert (await closed(window.ws))["code"] == CloseCode.REPLACED
    assert metrics.snapshot()["layer_messages_invalid"] == before + 2


# Close reasons -----------------------------------------------------------------------------


async def test_every_refusal_carries_a_reason():
    for bad, code, reason in [
        ("not-a-key", CloseCode.INVALID_KEY, "invalid window key: bad signature"),
        (12, CloseCode.INVALID_KEY, "invalid window key: missing or malformed"),
    ]:
        ws = await connect_raw()
        await ws.send_json_to({"type": "hello", "window_key": bad, "protocol": 1})
        message = await closed(ws)
        assert (message["code"], message["reason"]) == (code, reason)
    ws = await connect_raw()
    await ws.send_to(text_data='{"type": "call"}')
    message = await closed(ws)
    assert (message["code"], message["reason"]) == (
        CloseCode.BAD_HELLO,
        "the first frame must be a hello for protocol 1 or 2",
    )


async def test_another_users_session_is_told_why(alice):
    bob = await sync_to_async(User.objects.create_user)("bob", password="bob-pass")
    from tests.conftest import make_key

    ws = await connect_raw(await sync_to_async(session_headers)(bob))
    await ws.send_json_to({"type": "hello", "window_key": make_key(alice), "protocol": 1})
    message = await closed(ws)
    assert (message["code"], message["reason"]) == (
        CloseCode.KEY_REFUSED,
        "key was issued to another user or the session has ended",
    )


# Renewing: a signed-in window whose session has ended is told, not downgraded ---------------


def renew(client: Client, previous_key: str):
    return client.post(KEY_URL, {"previous_key": previous_key}, content_type="application/json")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_renewing_a_signed_in_windows_key_in_the_same_session(alice):
    client = signed_in(alice)
    first = post(client).json()["window_key"]
    response = renew(client, first)
    assert response.status_code == 200
    assert load_key(response.json()["window_key"]).user_pk == str(alice.pk)


@pytest.mark.parametrize("now", ["logged out", "another account"])
def test_renewing_after_the_session_ended_is_refused_session_ended(alice, now):
    first = post(signed_in(alice)).json()["window_key"]
    client = Client() if now == "logged out" else signed_in(User.objects.create_user("bob"))
    response = renew(client, first)
    assert response.status_code == 403
    assert response.json()["code"] == "session_ended"


def test_an_anonymous_or_foreign_previous_key_asks_nothing(alice):
    anonymous = post().json()["window_key"]
    assert renew(Client(), anonymous).status_code == 200
    assert renew(Client(), "not-a-key").status_code == 200
    forged = signing.dumps({"u": alice.pk}, salt="another salt")
    assert load_key(renew(Client(), forged).json()["window_key"]).user_pk is None
