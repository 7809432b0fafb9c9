import asyncio
import json
import os
import signal
import subprocess
import sys
import threading

import pytest
from channels.auth import AuthMiddlewareStack
from channels.generic.websocket import WebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application
from django.test import override_settings
from django.urls import path, re_path
from django.utils.module_loading import import_string

from floorchannels.checks import check_channel_layer, check_routing
from floorchannels.routing import websocket_urlpatterns
from tests.conftest import make_key, wait_until
from tests.e2e.conftest import ROOT, free_port


def ids(errors):
    return [e.id for e in errors]


def test_configured_project_passes():
    assert check_channel_layer() == [] and check_routing() == []


def test_missing_channel_layer():
    with override_settings(CHANNEL_LAYERS={}):
        assert ids(check_channel_layer()) == ["floorchannels.E001"]


def test_layer_without_groups():
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "tests.test_checks.NoGroups"}}):
        assert ids(check_channel_layer()) == ["floorchannels.E003"]


class NoGroups:
    async def send(self, channel, message):
        pass


def test_missing_routing():
    with override_settings(ASGI_APPLICATION=None):
        assert ids(check_routing()) == ["floorchannels.E004"]
    with override_settings(ASGI_APPLICATION="tests.test_checks.bare_app"):
        assert ids(check_routing()) == ["floorchannels.W001"]


async def bare_app(scope, receive, send):
    pass


def test_queues_without_the_channels_app_warn():
    from floorchannels.checks import check_worker_command

    assert check_worker_command() == []
    apps_without_channels = [
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "floorchannels",
        "tests.testapp",
    ]
    with override_settings(INSTALLED_APPS=apps_without_channels):
        assert ids(check_worker_command()) == ["floorchannels.W002"]


def test_small_capacity_warns():
    from floorchannels.checks import check_capacity

    assert check_capacity() == []  # the test settings use 10,000
    small = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=small):
        assert ids(check_capacity()) == ["floorchannels.W003"]
    sized = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"channel_capacity": {"floorchannels-hub*": 100000}},
        }
    }
    with override_settings(CHANNEL_LAYERS=sized):
        assert check_capacity() == []


# Settings ---------------------------------------------------------------------------------


def test_the_test_settings_pass():
    from floorchannels.checks import check_settings

    assert check_settings() == []


def test_unknown_keys_warn_with_the_nearest_known_key():
    from floorchannels.checks import check_settings

    with override_settings(FLOORCHANNELS={"HISTORY_SIZ": 10, "COLOUR": "blue", "URL": "ws/x/"}):
        problems = check_settings()
    assert ids(problems) == ["floorchannels.W004", "floorchannels.W004"]
    assert "'HISTORY_SIZ'" in problems[0].msg and problems[0].hint == "Did you mean 'HISTORY_SIZE'?"
    assert "'COLOUR'" in problems[1].msg and "Did you mean" not in problems[1].hint


def test_values_of_the_wrong_type_are_errors():
    from floorchannels.checks import check_settings

    wrong = {
        "HISTORY_SIZE": "1000",  # from an environment variable, not converted
        "GC_TUNING": 1,
        "CALL_TIMEOUT": True,
        "MAX_CONCURRENT_CALLS": 8.5,
    }
    right = {
        "HEARTBEAT": 10,  # a float setting takes an int
        "WINDOW_KEY_MAX_AGE": 3600.0,  # seconds, whole or not
        "RUN_QUEUES_IN_PROCESS": None,
        "HISTORY_REDIS_URL": None,
        "AUTODISCOVER": False,
        "URL": "socket/",
    }
    with override_settings(FLOORCHANNELS={**wrong, **right}):
        problems = check_settings()
    assert ids(problems) == ["floorchannels.E008"] * len(wrong)
    assert [p.msg.split("]")[0] for p in problems] == [f"FLOORCHANNELS[{name!r}" for name in wrong]
    assert "must be int" in problems[0].msg and problems[0].hint == "The default is 1000."


def test_settings_that_are_not_a_dict_are_an_error_and_the_defaults_apply():
    from floorchannels.checks import check_settings
    from floorchannels.conf import DEFAULTS, fc_settings

    with override_settings(FLOORCHANNELS=[("URL", "x/")]):
        assert ids(check_settings()) == ["floorchannels.E009"]
        assert fc_settings.URL == DEFAULTS["URL"]


# runserver ---------------------------------------------------------------------------------

BASE_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels",
    "floorchannels",
    "tests.testapp",
]


@pytest.mark.parametrize(
    ("installed_apps", "hint"),
    [
        (BASE_APPS, 'Add "daphne" to INSTALLED_APPS, first.'),
        (
            ["django.contrib.staticfiles", "daphne", *BASE_APPS],
            'Move "daphne" before "django.contrib.staticfiles"',
        ),
        (["daphne", "django.contrib.staticfiles", *BASE_APPS], None),
        ([*BASE_APPS, "daphne"], None),  # without staticfiles, daphne's runserver wins anywhere
    ],
)
def test_runserver_without_daphnes_runserver_warns(monkeypatch, installed_apps, hint):
    from floorchannels.checks import check_runserver

    with override_settings(INSTALLED_APPS=installed_apps):
        monkeypatch.setattr(sys, "argv", ["manage.py", "runserver", "8000"])
        problems = check_runserver()
        monkeypatch.setattr(sys, "argv", ["manage.py", "migrate"])
        assert check_runserver() == []  # only the runserver command is concerned
    if hint is None:
        assert problems == []
    else:
        assert ids(problems) == ["floorchannels.W005"]
        assert "/ws/floorchannels/" in problems[0].msg and problems[0].hint.startswith(hint)


def test_djangos_runserver_prints_the_warning():
    """The real command, with its autoreloader (whose child process runs the checks)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONUNBUFFERED": "1"}
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the autoreloader's child is in the same group
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: "Quit the server with" in "".join(output), 60, "runserver to start")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
        reader.join(10)
    text = "".join(output)
    assert "(floorchannels.W005) `manage.py runserver` is Django's own runserver" in text, text
    assert 'HINT: Add "daphne" to INSTALLED_APPS, first.' in text, text


# Routing, as a connecting browser meets it ---------------------------------------------------


class Refuser(WebsocketConsumer):
    def connect(self):
        self.close()


#: floorchannels' routes under a prefix: /ws/floorchannels/ finds nothing.
prefixed = ProtocolTypeRouter({"websocket": URLRouter([path("api/", URLRouter(websocket_urlpatterns))])})
#: Another consumer takes every path under ws/ first.
shadowed = ProtocolTypeRouter(
    {"websocket": URLRouter([re_path(r"^ws/", Refuser.as_asgi()), *websocket_urlpatterns])}
)
#: A nested router that finds nothing passes on to the next route, as Channels does.
fallthrough = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [path("ws/", URLRouter([path("other/", Refuser.as_asgi())])), *websocket_urlpatterns]
        )
    }
)
#: Middleware between the protocol router and the URL router.
stacked = ProtocolTypeRouter(
    {"websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))}
)
http_only = ProtocolTypeRouter({"http": bare_app})
#: Django's static files handler around the whole application passes websockets on.
static_outside = ASGIStaticFilesHandler(ProtocolTypeRouter({"websocket": URLRouter(websocket_urlpatterns)}))


async def welcomed(application, url: str) -> bool:
    """Whether a browser connecting to ``url`` is welcomed by floorchannels: the ASGI
    exchange a server has with the application, ended by whichever comes first."""
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    scope = {
        "type": "websocket",
        "path": url,
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"origin", b"http://testserver")],
        "subprotocols": [],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    app = asyncio.ensure_future(application(scope, inbox.get, outbox.put))

    async def output() -> dict:
        getter = asyncio.ensure_future(outbox.get())
        await asyncio.wait({getter, app}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():
            getter.cancel()
            app.result()  # the application ended without a word: its exception, if any
            raise AssertionError("no answer from the application")
        return getter.result()

    try:
        await inbox.put({"type": "websocket.connect"})
        try:
            if (await output())["type"] != "websocket.accept":
                return False
        except ValueError:  # the outermost URLRouter found no route
            return False
        hello = {"type": "hello", "window_key": make_key(), "protocol": 1}
        await inbox.put({"type": "websocket.receive", "text": json.dumps(hello)})
        frame = await output()
        return frame["type"] == "websocket.send" and json.loads(frame["text"])["type"] == "welcome"
    finally:
        await inbox.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait({app}, timeout=10)


@pytest.mark.parametrize(
    ("application", "url", "expected"),
    [
        ("tests.asgi.application", "ws/floorchannels/", []),
        ("tests.test_checks.stacked", "ws/floorchannels/", []),
        ("tests.test_checks.fallthrough", "ws/floorchannels/", []),
        ("tests.test_checks.static_outside", "ws/floorchannels/", []),
        ("tests.test_checks.prefixed", "ws/floorchannels/", ["floorchannels.W007"]),
        ("tests.test_checks.prefixed", "api/ws/floorchannels/", []),  # the hint's other way
        ("tests.test_checks.shadowed", "ws/floorchannels/", ["floorchannels.W007"]),
        ("tests.asgi.application", "socket/", ["floorchannels.W007"]),  # URL changed, routes not
    ],
)
@pytest.mark.django_db(transaction=True)  # the session and auth middleware may read the database
async def test_the_routing_check_agrees_with_a_connecting_browser(application, url, expected):
    with override_settings(ASGI_APPLICATION=application, FLOORCHANNELS={"URL": url}):
        problems = check_routing()
        assert ids(problems) == expected
        assert await welcomed(import_string(application), "/" + url) == (expected == [])
    if expected:
        assert f"Browsers connect to /{url}" in problems[0].msg


def test_an_application_without_websockets_warns():
    for application in (
        "tests.test_checks.http_only",
        "tests.test_checks.django_only",
        "tests.test_checks.static_only",
    ):
        with override_settings(ASGI_APPLICATION=application):
            assert ids(check_routing()) == ["floorchannels.W006"], application


django_only = get_asgi_application()
static_only = ASGIStaticFilesHandler(get_asgi_application())


@pytest.mark.parametrize(
    "topics",
    [
        {"room.{name}": "no.such.module.may_join"},
        {"room.{name}": "floorchannels.conf.DEFAULTS"},
        {"": "floorchannels.permissions.everyone"},
    ],
)
def test_misdeclared_topic_patterns_are_reported(topics):
    from floorchannels.checks import check_topic_patterns

    with override_settings(FLOORCHANNELS={"TOPICS": topics}):
        assert [e.id for e in check_topic_patterns()] == ["floorchannels.E012"]


def test_declared_topic_patterns_pass():
    from floorchannels.checks import check_topic_patterns

    with override_settings(FLOORCHANNELS={"TOPICS": {"room.{name}": "floorchannels.permissions.everyone"}}):
        assert check_topic_patterns() == []
