"""Topics joined at runtime, in Chromium against daphne and Redis.

A small project is written to a temporary directory: a page with the client, a view that
publishes to a topic, and ``FLOORCHANNELS["TOPICS"]`` allowing ``room.{name}`` for every
room but ``room.secret``. The page joins a room, receives it (knowing which topic each
message came from), leaves it and hears nothing more, is refused the secret room, and comes
back from a daphne restart in the room it joined, with what was published meanwhile, once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request

import pytest

from tests.e2e.conftest import ROOT, daphne_command, free_port, stop, wait_for_port

pytestmark = pytest.mark.e2e

SETTINGS = """
import os

SECRET_KEY = "e2e-joins-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "floorchannels",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "joinsite.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [os.path.dirname(__file__)],
              "OPTIONS": {"context_processors": ["django.template.context_processors.request"]}}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["JOINS_DB"]}}
ASGI_APPLICATION = "joinsite.asgi.application"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                              "CONFIG": {"hosts": [os.environ["REDIS_URL"]]}}}
FLOORCHANNELS = {"TOPICS": {"room.{name}": "joinsite.permissions.may_join_room"}}
STATIC_URL = "/static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
"""

PERMISSIONS = '''
def may_join_room(window, name):
    """Every room but the secret one (the unit tests check real users and the database)."""
    return name != "secret"
'''

URLS = """
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import path

from floorchannels import BROADCAST, call


def page(request):
    return render(request, "page.html")


def publish(request, topic, n):
    call("room.message", BROADCAST if topic == "all" else topic, kwargs={"n": n})
    return HttpResponse("sent")


urlpatterns = [path("", page), path("publish/<str:topic>/<int:n>/", publish)]
"""

ASGI = """
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "joinsite.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from floorchannels.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {"http": ASGIStaticFilesHandler(django_asgi_app), "websocket": URLRouter(websocket_urlpatterns)}
)
"""

PAGE = """{% load floorchannels %}<!doctype html>
<html><head><meta charset="utf-8"><title>Rooms</title>{% floorchannels_script %}</head>
<body><p id="state">loading</p>
<script>
"use strict";
// What the tests read: every room.message as [topic it came through, n], the topic events.
window.received = [];
window.topicEvents = [];
window.welcomes = 0;
document.addEventListener("DOMContentLoaded", () => {
  const client = (window.client = floorchannels.connect());
  const state = document.getElementById("state");
  client.addEventListener("statechange", () => (state.textContent = client.state));
  client.addEventListener("topic", (event) => window.topicEvents.push(event.detail));
  client.addEventListener("welcome", () => window.welcomes++);
  client.on("room.message", (kwargs, frame) => window.received.push([client.topicOf(frame) ?? null, kwargs.n]));
  window.joinRoom = (topic) =>
    client.join(topic).then((joined) => ({ ok: true, joined }), (error) => ({ ok: false, code: error.code }));
  window.leaveRoom = (topic) => client.leave(topic).then(() => ({ ok: true }));
});
</script></body></html>
"""


class Site:
    """The joins project in a temporary directory, served by daphne on a fixed port."""

    def __init__(self, tmp, redis_url):
        package = tmp / "joinsite"
        package.mkdir()
        for name, text in {
            "__init__.py": "",
            "settings.py": SETTINGS,
            "permissions.py": PERMISSIONS,
            "urls.py": URLS,
            "asgi.py": ASGI,
            "page.html": PAGE,
        }.items():
            (package / name).write_text(textwrap.dedent(text))
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "joinsite.settings",
            "PYTHONPATH": os.pathsep.join([str(tmp), str(ROOT)]),
            "JOINS_DB": str(tmp / "db.sqlite3"),
            "REDIS_URL": redis_url,
        }
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "-v0"],
            cwd=ROOT,
            env=self.env,
            check=True,
            timeout=120,
        )
        self.port = free_port()
        self.http = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        command = daphne_command("joinsite.asgi:application", self.port)
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.env)
        wait_for_port(self.port, self.process)

    def stop(self):
        if self.process is not None:
            stop(self.process)
            self.process = None

    def publish(self, topic, n):
        """Publish through daphne's own process (a view calling call())."""
        with urllib.request.urlopen(f"{self.http}/publish/{topic}/{n}/", timeout=30) as response:
            assert response.read() == b"sent"

    def elsewhere(self, code):
        """Run ``code`` in another process of the project (a worker, a command)."""
        code = "import django; django.setup()\n" + code
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=self.env, check=True, timeout=120)

    def publish_elsewhere(self, topic, numbers):
        """Publish from another process, while daphne may be down."""
        self.elsewhere(
            "from floorchannels import call\n"
            f"for n in {list(numbers)!r}: call('room.message', {topic!r}, kwargs={{'n': n}})"
        )


@pytest.fixture
def site(tmp_path, redis):
    site = Site(tmp_path, redis.url)
    site.start()
    yield site
    site.stop()


def received(page):
    return [tuple(item) for item in page.evaluate("window.received")]


def wait_for_count(page, count, timeout=30000):
    page.wait_for_function(f"window.received.length >= {count}", timeout=timeout)


def test_a_page_joins_receives_leaves_is_refused_and_comes_back_after_a_restart(browser, site):
    context = browser.new_context()
    page = context.new_page()
    page.goto(site.http + "/")
    page.wait_for_function("document.getElementById('state').textContent === 'open'", timeout=30000)

    # Join at runtime: no reconnect, and messages say which topic they came through.
    joined = page.evaluate("joinRoom('room.lobby')")
    assert joined["ok"], joined
    assert joined["joined"]["topic"] == "room.lobby" and joined["joined"]["presence"] is False
    site.publish("room.lobby", 1)
    wait_for_count(page, 1)
    assert received(page) == [("room.lobby", 1)]

    # Leave: nothing more of the room arrives (a broadcast sent after it comes first).
    assert page.evaluate("leaveRoom('room.lobby')") == {"ok": True}
    site.publish("room.lobby", 2)
    site.publish("all", 3)
    wait_for_count(page, 2)
    assert received(page) == [("room.lobby", 1), (None, 3)]

    # Refused: the permission says no, and a topic no pattern declares is refused too.
    assert page.evaluate("joinRoom('room.secret')") == {"ok": False, "code": "forbidden"}
    assert page.evaluate("joinRoom('lobby')") == {"ok": False, "code": "forbidden"}
    site.publish("room.secret", 4)
    site.publish("all", 5)
    wait_for_count(page, 3)
    assert received(page)[2:] == [(None, 5)]

    # Back in a room, then daphne goes away: the socket is closed from the server.
    assert page.evaluate("joinRoom('room.lobby')")["ok"]
    assert page.evaluate("window.welcomes") == 1
    site.stop()
    page.wait_for_function("document.getElementById('state').textContent !== 'open'", timeout=30000)
    site.publish_elsewhere("room.lobby", [6, 7, 8])  # published while the page is away
    site.start()
    wait_for_count(page, 6)
    page.wait_for_function("document.getElementById('state').textContent === 'open'", timeout=30000)
    assert page.evaluate("window.welcomes") >= 2  # reconnected, no reload
    site.publish("room.lobby", 9)
    wait_for_count(page, 7)
    site.publish("all", 10)
    wait_for_count(page, 8)
    # Each once, in order, through the joined topic: the reconnect was in the room before its
    # welcome, and its resume replayed what it had missed.
    assert received(page)[3:] == [
        ("room.lobby", 6),
        ("room.lobby", 7),
        ("room.lobby", 8),
        ("room.lobby", 9),
        (None, 10),
    ]
    events = page.evaluate("window.topicEvents")
    assert [(e["action"], e["topic"], e["by"]) for e in events] == [
        ("joined", "room.lobby", "client"),
        ("left", "room.lobby", "client"),
        ("joined", "room.lobby", "client"),
    ]
    context.close()


def test_another_process_grants_and_revokes_a_topic_of_an_open_page(browser, site):
    """grant_topic/revoke_topic from a process that does not hold the socket (a worker, a
    command): the message goes through Redis to the window's group, in daphne."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(site.http + "/")
    page.wait_for_function("document.getElementById('state').textContent === 'open'", timeout=30000)
    window_id = page.evaluate("client.windowId")

    # No pattern allows "vip" (Python is trusted), and it may be a composite topic.
    site.elsewhere(f"from floorchannels.joins import grant_topic\ngrant_topic({window_id!r}, ('vip', 1))")
    page.wait_for_function("window.topicEvents.length >= 1", timeout=30000)
    [event] = page.evaluate("window.topicEvents")
    assert (event["action"], event["topic"], event["by"]) == ("joined", ["vip", 1], "server")
    site.publish_elsewhere(("vip", 1), [1])
    wait_for_count(page, 1)
    assert received(page) == [(["vip", 1], 1)]

    site.elsewhere(f"from floorchannels.joins import revoke_topic\nrevoke_topic({window_id!r}, ('vip', 1))")
    page.wait_for_function("window.topicEvents.length >= 2", timeout=30000)
    assert page.evaluate("window.topicEvents[1].action") == "left"
    site.publish_elsewhere(("vip", 1), [2])
    site.publish("all", 3)
    wait_for_count(page, 2)
    assert received(page) == [(["vip", 1], 1), (None, 3)]
    context.close()
