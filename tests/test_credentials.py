"""What a key records about the credential that issued it: digests, never the credential."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.core import signing
from rest_framework_simplejwt.tokens import AccessToken

from floorchannels import credentials
from floorchannels.credentials import Credential
from floorchannels.windows import SALT, ExpiredKey, InvalidKey, load_key, window_key

pytestmark = pytest.mark.django_db


def test_session_and_unknown_authentication():
    assert credentials.describe(object(), session=True) == Credential(credentials.SESSION)
    assert credentials.describe(None, session=False) == Credential(credentials.USER)
    assert credentials.describe("something else", session=False).kind == credentials.USER


def test_a_jwt_key_holds_a_digest_of_its_jti_and_its_expiry_never_the_token():
    user = User.objects.create_user("alice")
    token = AccessToken.for_user(user)
    credential = credentials.describe(token, session=False)
    assert credential.kind == credentials.JWT and credential.expires == token["exp"]
    key = window_key(SimpleNamespace(user=user), credential=credential)
    payload = signing.loads(key, salt=SALT)
    assert payload["c"] == ["jwt", credentials.digest("jwt", token["jti"]), token["exp"]]
    assert token["jti"] not in str(payload) and str(token) not in key
    assert load_key(key).credential == credential


def test_a_key_is_refused_once_its_token_has_expired():
    user = User.objects.create_user("alice")
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=-1))
    key = window_key(SimpleNamespace(user=user), credential=credentials.describe(token, session=False))
    with pytest.raises(ExpiredKey, match="the token this window key was issued for has expired"):
        load_key(key)


def test_malformed_credentials_are_invalid_keys():
    for bad in [["jwt", 1, None], ["nope", "d", None], ["session", "d", None], ["jwt", "d", True], "x"]:
        payload = {"w": "w" * 40, "u": "1", "h": "", "t": [], "p": [], "i": 2**31, "c": bad}
        with pytest.raises(InvalidKey):
            load_key(signing.dumps(payload, salt=SALT, compress=True))
    # A token key without a user is not something the key view issues.
    payload = {"w": "w" * 40, "u": None, "h": "", "t": [], "p": [], "i": 2**31, "c": ["token", "d", None]}
    with pytest.raises(InvalidKey):
        load_key(signing.dumps(payload, salt=SALT, compress=True))


def test_an_anonymous_window_is_never_bound_to_a_credential():
    from django.contrib.auth.models import AnonymousUser

    key = window_key(SimpleNamespace(user=AnonymousUser()), credential=Credential(credentials.JWT, "d", 1.0))
    assert "c" not in signing.loads(key, salt=SALT)


# Token-bound keys through a socket (in process): no cookie, and deleting the token closes it.


def _token_key(user, auth):
    credential = credentials.describe(auth, session=False)
    return window_key(SimpleNamespace(user=user), credential=credential), credential


def _drf_token(user):
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=user)


def _knox_token(user):
    from knox.models import AuthToken

    instance, _raw = AuthToken.objects.create(user=user, expiry=timedelta(hours=1))
    return instance


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("make_token", "kind"), [(_drf_token, "token"), (_knox_token, "knox")])
async def test_a_token_bound_socket_needs_no_cookie_and_closes_when_the_token_is_deleted(make_token, kind):
    from asgiref.sync import sync_to_async

    from floorchannels.protocol import CloseCode
    from tests.conftest import open_window

    user = await sync_to_async(User.objects.create_user)("mobile", password="x")
    token = await sync_to_async(make_token)(user)
    key, credential = await sync_to_async(_token_key)(user, token)
    assert credential.kind == kind
    window = await open_window(key)  # no cookie, no middleware
    assert window.welcome["type"] == "welcome"
    await sync_to_async(token.delete)()
    message = await window.ws.receive_output(timeout=10)
    assert message["type"] == "websocket.close", message
    assert message["code"] == CloseCode.KEY_REFUSED
    assert "token" in message.get("reason", ""), message
    # The same key is refused from now on.
    from tests.conftest import connect_raw, expect_close

    again = await connect_raw()
    await again.send_json_to({"type": "hello", "window_key": key, "protocol": 1})
    assert await expect_close(again) == CloseCode.KEY_REFUSED
