"""The wheel and sdist PyPI would get: their files, their metadata, and a project that
installs the wheel with no extras (Django and Channels only) and works.

One build per run (module fixture), from a copy of the checkout (tests/packaging/dist.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import urllib.error
import urllib.request
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import trove_classifiers
from packaging.requirements import Requirement

import floorchannels
from tests.conftest import wait_until
from tests.e2e.conftest import free_port, wait_for_port
from tests.packaging.dist import build, checkout_copy, venv_env

pytestmark = pytest.mark.e2e

#: What a project chooses; never installed by floorchannels on its own.
OPTIONAL = {"channels-redis", "redis", "daphne", "djangorestframework", "prometheus-client", "twisted"}
#: Tools for working on floorchannels: dependency groups, never published metadata.
TOOLS = {"pytest", "playwright", "ruff", "hypothesis", "uvicorn", "build", "twine", "mkdocs", "websockets"}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The files of a clone of this checkout, as they are now."""
    return checkout_copy(tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def dist(source, tmp_path_factory) -> tuple[Path, Path]:
    return build(source, tmp_path_factory.mktemp("dist"))


def package_files(source: Path) -> set[str]:
    """What the package is made of in a clone: modules, the client bundle, py.typed."""
    return {
        path.relative_to(source).as_posix()
        for path in (source / "floorchannels").rglob("*")
        if path.is_file()
    }


def metadata(dist: tuple[Path, Path]):
    wheel, _ = dist
    with zipfile.ZipFile(wheel) as archive:
        name = f"floorchannels-{floorchannels.__version__}.dist-info/METADATA"
        return Parser().parsestr(archive.read(name).decode())


# The artifacts -----------------------------------------------------------------------------


def test_the_wheel_holds_the_package_and_the_license_and_nothing_else(source, dist):
    wheel, _ = dist
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    info = f"floorchannels-{floorchannels.__version__}.dist-info/"
    assert {n for n in names if not n.startswith(info)} == package_files(source)
    assert {
        "floorchannels/py.typed",
        "floorchannels/static/floorchannels/floorchannels.js",
        "floorchannels/templatetags/floorchannels.py",
        f"{info}licenses/LICENSE",
    } <= names
    assert not [
        n for n in names if n.split("/")[0] in {"tests", "sampleproject", "bench", "frontend", "docs"}
    ]


def test_the_sdist_holds_what_builds_the_wheel(source, dist):
    _, sdist = dist
    top = f"floorchannels-{floorchannels.__version__}/"
    with tarfile.open(sdist) as archive:
        names = {m.name[len(top) :] for m in archive.getmembers() if m.isfile()}
        license_text = archive.extractfile(top + "LICENSE").read().decode()
    assert {"LICENSE", "README.md", "pyproject.toml", "PKG-INFO"} <= names
    assert package_files(source) <= names
    assert not [
        n for n in names if n.split("/")[0] in {"tests", "sampleproject", "bench", "frontend", "docs"}
    ]
    assert license_text == (source / "LICENSE").read_text() and "BSD" in license_text


def test_metadata_depends_on_django_and_channels_only(dist):
    meta = metadata(dist)
    requirements = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    always = {str(r) for r in requirements if r.marker is None}
    assert always == {"django>=5.2", "channels>=4.2"}
    extras = {
        extra: {r.name.lower() for r in requirements if r.marker and r.marker.evaluate({"extra": extra})}
        for extra in meta.get_all("Provides-Extra")
    }
    assert extras == {
        "redis": {"channels-redis", "redis"},
        "daphne": {"daphne"},
        "drf": {"djangorestframework"},
        "prometheus": {"prometheus_client"},
        "all": {"floorchannels"},  # floorchannels[redis,daphne,drf,prometheus]
    }
    (everything,) = [r for r in requirements if r.name == "floorchannels"]
    assert everything.extras == {"redis", "daphne", "drf", "prometheus"}
    named = {r.name.lower() for r in requirements}
    assert not named & TOOLS, "test or docs tools in published metadata"
    # redis-py 8's default socket timeout kills idle channels-redis readers (docs/operations.md).
    (redis,) = [r for r in requirements if r.name == "redis"]
    assert not redis.specifier.contains("8.0")
    # With its C parser for Redis's replies (docs/benchmarks.md).
    assert redis.extras == {"hiredis"}


def test_metadata_describes_the_project(source, dist):
    meta = metadata(dist)
    assert meta["Name"] == "floorchannels" and meta["Version"] == floorchannels.__version__
    assert meta["License-Expression"] == "BSD-3-Clause" and meta["License-File"] == "LICENSE"
    assert meta["Requires-Python"] == ">=3.11"
    classifiers = set(meta.get_all("Classifier"))
    assert {
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Typing :: Typed",
    } <= classifiers
    unknown = classifiers - trove_classifiers.classifiers
    deprecated = classifiers & set(trove_classifiers.deprecated_classifiers)
    assert not unknown and not deprecated, "PyPI would refuse the upload"
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert urls == {
        "Homepage": "https://github.com/floorchannels/floorchannels",
        "Documentation": "https://floorchannels.readthedocs.io/",
        "Source": "https://github.com/floorchannels/floorchannels",
        "Issues": "https://github.com/floorchannels/floorchannels/issues",
    }
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload() == (source / "README.md").read_text()


def test_twine_accepts_both(dist):
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


# A project with no extras ---------------------------------------------------------------------

SETTINGS = """\
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "packaging-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DEBUG = True
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "channels",
    "floorchannels",
    "shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "mysite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
ASGI_APPLICATION = "mysite.asgi.application"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 10000}}}
STATIC_URL = "/static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# What a project may set without the extras it needs (the system checks say so).
if os.environ.get("FC_VARIANT") == "redis-layer":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]},
        }
    }
if os.environ.get("FC_VARIANT") == "redis-history":
    FLOORCHANNELS = {"HISTORY_REDIS_URL": "redis://127.0.0.1:6379/0"}
"""

ASGI = """\
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from floorchannels.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": URLRouter(websocket_urlpatterns)})
"""

URLS = """\
from django.shortcuts import render
from django.urls import path

urlpatterns = [path("", lambda request: render(request, "shop/page.html"))]
"""

SIGNALS = """\
from floorchannels import WINDOW, acall, everyone, signal


@signal("shop.add", is_allowed_to=everyone)
async def add(window, a: int, b: int) -> int:
    await acall("shop.total", WINDOW, window=window, kwargs={"total": a + b})
    return a + b
"""

PAGE = """\
{% load floorchannels %}<!doctype html><title>shop</title>{% floorchannels_script %}
"""

#: Run in the project's venv: what a browser's socket and page meet, as one JSON line.
PROBE = """\
import asyncio
import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
import django

django.setup()

from asgiref.testing import ApplicationCommunicator
from django.contrib.staticfiles import finders
from django.test import Client

from mysite.asgi import application

page = Client().get("/")
config = json.loads(page.content.decode().split('type="application/json">')[1].split("</script>")[0])


async def socket():
    scope = {
        "type": "websocket",
        "path": config["url"],
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"origin", b"http://testserver")],
        "subprotocols": [],
    }
    ws = ApplicationCommunicator(application, scope)
    frames = []

    async def send(frame):
        await ws.send_input({"type": "websocket.receive", "text": json.dumps(frame)})

    async def receive():
        message = await ws.receive_output(30)
        return json.loads(message["text"]) if message["type"] == "websocket.send" else message

    await ws.send_input({"type": "websocket.connect"})
    accept = await ws.receive_output(30)
    await send({"type": "hello", "window_key": config["window_key"], "protocol": 1})
    frames.append(await receive())
    await send({"type": "call", "id": 1, "signal": "shop.add", "kwargs": {"a": 2, "b": 3}})
    frames.append(await receive())
    frames.append(await receive())
    # No DRF installed: a live resource subscription is answered, not left waiting.
    await send({"type": "subscribe", "id": 2, "resource": "notes"})
    frames.append(await receive())
    await ws.send_input({"type": "websocket.disconnect", "code": 1000})
    await ws.wait(30)
    return accept, frames


accept, frames = asyncio.run(socket())
try:
    from floorchannels.metrics import register_prometheus

    register_prometheus()
    prometheus = "registered"
except ImportError as exc:
    prometheus = str(exc)
bundle = finders.find("floorchannels/floorchannels.js")
print(json.dumps({
    "page": page.status_code,
    "script": '<script src="/static/floorchannels/floorchannels.js"' in page.content.decode(),
    "bundle": os.path.getsize(bundle) if bundle else None,
    "accept": accept["type"],
    "frames": frames,
    "prometheus": prometheus,
}))
"""


@pytest.fixture(scope="module")
def bare(dist, tmp_path_factory):
    """A new venv with the wheel installed without extras, and a small project using it."""
    wheel, _ = dist
    tmp = tmp_path_factory.mktemp("bare")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = venv_env(venv)
    install = subprocess.run(
        [venv / "bin/python", "-m", "pip", "install", "--quiet", str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    project = tmp / "project"
    files = {
        "mysite/__init__.py": "",
        "mysite/settings.py": SETTINGS,
        "mysite/asgi.py": ASGI,
        "mysite/urls.py": URLS,
        "shop/__init__.py": "",
        "shop/signals.py": SIGNALS,
        "shop/templates/shop/page.html": PAGE,
        "probe.py": PROBE,
    }
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    (project / "manage.py").write_text(
        "import os, sys\n"
        'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")\n'
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(sys.argv)\n"
    )
    return venv, project, env


def run(bare, *args: str, variant: str = "") -> subprocess.CompletedProcess:
    venv, project, env = bare
    return subprocess.run(
        [str(venv / "bin/python"), *args],
        cwd=project,
        env={**env, "FC_VARIANT": variant},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_wheel_installs_django_and_channels_only(bare):
    listed = run(bare, "-m", "pip", "list", "--format=json")
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"django", "channels", "floorchannels"} <= installed
    assert not installed & OPTIONAL, installed & OPTIONAL


def test_a_project_without_extras_passes_the_checks_and_serves_a_window(bare):
    check = run(bare, "manage.py", "check")
    assert check.returncode == 0 and "System check identified no issues" in check.stdout, check.stderr
    migrate = run(bare, "manage.py", "migrate", "--verbosity", "0")
    assert migrate.returncode == 0, migrate.stderr

    probe = run(bare, "probe.py")
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert seen["page"] == 200 and seen["script"] and seen["bundle"] > 1000
    assert seen["accept"] == "websocket.accept"
    welcome, *rest = seen["frames"]
    assert welcome["type"] == "welcome"
    reply = next(f for f in rest if f["type"] == "reply")
    push = next(f for f in rest if f["type"] == "signal")
    assert reply == {"type": "reply", "id": 1, "ok": True, "result": 5}
    assert push["signal"] == "shop.total" and push["kwargs"] == {"total": 5}
    [refused] = [f for f in rest if f.get("id") == 2]
    assert (refused["ok"], refused["error"]["code"]) == (False, "unknown_resource")
    assert "floorchannels[drf]" in refused["error"]["message"]
    assert seen["prometheus"].endswith('pip install "floorchannels[prometheus]"'), seen["prometheus"]


@pytest.mark.parametrize(
    ("variant", "check_id", "package"),
    [
        ("redis-layer", "floorchannels.E006", "channels_redis"),
        ("redis-history", "floorchannels.E007", "redis"),
    ],
)
def test_redis_settings_without_the_extra_are_a_clear_error(bare, variant, check_id, package):
    check = run(bare, "manage.py", "check", variant=variant)
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"({check_id})" in check.stderr and f"the {package} package" in check.stderr, check.stderr
    assert 'HINT: pip install "floorchannels[redis]"' in check.stderr, check.stderr


def test_runserver_without_daphne_says_why_the_socket_is_a_404(bare):
    """Django's runserver (here: staticfiles') starts, warns, and refuses the socket."""
    venv, project, env = bare
    port = free_port()
    process = subprocess.Popen(
        [str(venv / "bin/python"), "manage.py", "runserver", f"127.0.0.1:{port}"],
        cwd=project,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # with the autoreloader's child
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    try:
        wait_for_port(port, process, timeout=60)
        wait_until(lambda: "Quit the server with" in "".join(output), 30, "runserver's banner")
        upgrade = urllib.request.Request(
            f"http://127.0.0.1:{port}/ws/floorchannels/",
            headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(upgrade, timeout=30)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
        reader.join(15)
    text = "".join(output)
    assert refused.value.code == 404
    assert (
        "(floorchannels.W005) `manage.py runserver` is the runserver of django.contrib.staticfiles" in text
    ), text
    assert 'HINT: Install daphne (pip install "floorchannels[daphne]")' in text, text
