"""ALLOWED_ORIGINS: scheme, host and port compared once set; ALLOWED_HOSTS otherwise."""

import pytest
from django.test import override_settings

from floorchannels.checks import check_key_settings
from floorchannels.origins import is_allowed_origin, parse_origin
from tests.conftest import make_key, open_window

pytestmark = pytest.mark.django_db(transaction=True)


def test_parse_origin_fills_in_the_default_port():
    assert parse_origin("https://App.Example.com") == ("https", "app.example.com", 443)
    assert parse_origin("http://localhost:5173") == ("http", "localhost", 5173)
    assert parse_origin("http://[::1]:8000") == ("http", "::1", 8000)
    for bad in ["app.example.com", "ftp://x", "https://x/path", "https://x:99999", "https://u@x", ""]:
        assert parse_origin(bad) is None, bad


def test_without_allowed_origins_any_port_of_an_allowed_host_passes():
    assert is_allowed_origin("http://testserver:1234")
    assert is_allowed_origin("https://localhost")
    assert not is_allowed_origin("https://evil.example")


@override_settings(FLOORCHANNELS={"ALLOWED_ORIGINS": ["https://app.example.com", "http://localhost:5173"]})
def test_allowed_origins_compare_scheme_host_and_port():
    assert is_allowed_origin("https://app.example.com")
    assert is_allowed_origin("https://app.example.com:443")
    assert is_allowed_origin("http://localhost:5173")
    assert not is_allowed_origin("http://app.example.com")  # scheme
    assert not is_allowed_origin("https://app.example.com:8443")  # port
    assert not is_allowed_origin("http://localhost:5174")
    assert not is_allowed_origin("http://testserver")  # the list replaces ALLOWED_HOSTS
    assert not is_allowed_origin("null")


@override_settings(FLOORCHANNELS={"ALLOWED_ORIGINS": ["http://localhost:5173"]})
async def test_the_socket_checks_allowed_origins():
    from channels.testing import WebsocketCommunicator

    from tests.asgi import application

    for origin, accepted in [(b"http://localhost:5173", True), (b"http://localhost:5174", False)]:
        ws = WebsocketCommunicator(application, "/ws/floorchannels/", headers=[(b"origin", origin)])
        connected, _ = await ws.connect()
        assert connected is accepted, origin
        if connected:
            await ws.disconnect()
    window = await open_window(make_key(), [(b"origin", b"http://localhost:5173")])
    await window.close()


def test_malformed_allowed_origins_are_a_system_check_error():
    with override_settings(
        FLOORCHANNELS={"ALLOWED_ORIGINS": ["https://ok.example", "ok.example", "https://x/"]}
    ):
        errors = check_key_settings()
    assert [e.id for e in errors] == ["floorchannels.E010"]
    assert "'ok.example'" in errors[0].msg
