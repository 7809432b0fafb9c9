"""Queues routed to Django's task framework (``TASK_QUEUES``), run by a real task worker.

The backend is django-tasks-db's database backend on the test database, and its worker is
``manage.py db_worker``, a process started here (on Django 5.2 through the django-tasks
backport, on Django 6 through ``django.tasks``). Windows are in-process communicators; the
worker reaches them through a real redis-server, as a task worker reaches a web process's
windows in production.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis as sync_redis
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection
from django.test import override_settings

from floorchannels import (
    BROADCAST,
    SERVER,
    USER,
    WINDOW,
    PublishError,
    WindowInfo,
    acall,
    call,
    current_call,
    metrics,
)
from floorchannels import signal as register_signal
from floorchannels.checks import check_queue_workers, check_task_queues
from floorchannels.task_queues import Route, framework, route_for
from floorchannels.windows import load_key
from tests.conftest import (
    await_until,
    frames_before_marker,
    make_key,
    open_window,
    session_headers,
    wait_until,
)
from tests.e2e.conftest import Redis, alive, stop

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[1]
#: The queue of tests.testapp's t.queued and t.queued_fail.
QUEUE = "tests"
SIGNAL_TASK = "floorchannels.signal_tasks.run_signal"

tasks = framework()


@tasks.task()
def notify(window: dict, text: str) -> None:
    """A project's own task: it pushes to the window it was given, its user, a topic and
    everyone, from the worker's process."""
    window = WindowInfo.from_task(window)
    for target, name in ((WINDOW, "window"), (USER, "user"), ("news", "topic"), (BROADCAST, "everyone")):
        call("t.note", target, window=window, kwargs={"text": text, "to": name})


#: What the in-process (immediate backend) runs saw: (window id, current_call()).
seen: list = []


@register_signal("tq.seen", queue="immediate")
def record_call(window):
    seen.append((window.window_id, current_call()))


@pytest.fixture(scope="module")
def redis_server():
    server = Redis()
    yield server
    server.stop()


def redis_layer(url: str) -> dict:
    return {
        "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [url]}}
    }


@pytest.fixture
def routed(redis_server):
    """The Redis layer and QUEUE routed to the database task backend, here and in the worker."""
    with sync_redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    floorchannels = {"TASK_QUEUES": {QUEUE: "default"}}
    with override_settings(CHANNEL_LAYERS=redis_layer(redis_server.url), FLOORCHANNELS=floorchannels):
        yield SimpleNamespace(url=redis_server.url, floorchannels=floorchannels)


WORKER_SETTINGS = """\
from tests.settings import *  # noqa: F403

DATABASES["default"]["NAME"] = {database!r}  # noqa: F405
CHANNEL_LAYERS = {layers!r}
FLOORCHANNELS = {floorchannels!r}
"""


class DbWorker:
    """``manage.py db_worker`` on the test database, the test's Redis and settings; ready once
    it logged its start (it polls for tasks every 50 ms from then on)."""

    def __init__(self, tmp_path: Path, routed: SimpleNamespace) -> None:
        (tmp_path / "task_worker_settings.py").write_text(
            WORKER_SETTINGS.format(
                database=connection.settings_dict["NAME"],
                layers=redis_layer(routed.url),
                floorchannels=routed.floorchannels,
            )
        )
        self.log = tmp_path / "db_worker.log"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "task_worker_settings",
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        }
        command = ["manage.py", "db_worker", "--queue-name", "*", "--interval", "0.05"]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, *command, "--no-startup-delay", "--no-reload"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(self.started, 60, "db_worker to start")
        except BaseException:
            self.stop()
            raise

    def output(self) -> str:
        return self.log.read_text()

    def started(self) -> bool:
        try:
            alive(self.process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{self.output()}") from None
        return "Starting worker" in self.output()

    def stop(self) -> None:
        stop(self.process)


@pytest.fixture
def start_worker(tmp_path, routed):
    workers: list[DbWorker] = []

    async def start() -> DbWorker:
        worker = await sync_to_async(DbWorker, thread_sensitive=False)(tmp_path, routed)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@sync_to_async
def task_rows() -> list:
    from django_tasks_db.models import DBTaskResult

    return list(DBTaskResult.objects.order_by("enqueued_at"))


async def status_of(row_id) -> str:
    return next(row.status for row in await task_rows() if row.id == row_id)


async def test_a_browser_call_is_stored_as_a_task_and_db_worker_runs_it_for_its_window(routed, start_worker):
    """queued: true while no worker runs means the task's row is written; the worker started
    afterwards runs the handler, whose progress reaches the window that called."""
    window = await open_window(make_key())
    reply = await window.call("t.queued", steps=2)
    assert reply["ok"] is True and reply["queued"] is True
    [row] = await task_rows()
    assert (row.status, row.task_path, row.queue_name) == ("READY", SIGNAL_TASK, "default")
    arguments = row.args_kwargs["kwargs"]
    assert json.loads(json.dumps(arguments)) == arguments
    assert arguments["window"]["window_id"] == window.welcome["window_id"]
    assert (arguments["signal"], arguments["kwargs"], arguments["call_id"]) == (
        "t.queued",
        {"steps": 2},
        f"{window.welcome['window_id']}:1",
    )

    worker = await start_worker()
    frames = [await window.receive(timeout=60) for _ in range(2)]
    assert [(f["signal"], f["kwargs"]) for f in frames] == [
        ("t.progress", {"done": 1, "total": 2}),
        ("t.progress", {"done": 2, "total": 2}),
    ], worker.output()
    await await_until(lambda: status_of(row.id), 30, "the task to be marked done")
    assert await status_of(row.id) == "SUCCESSFUL", worker.output()
    await window.close()


async def test_a_failing_handler_fails_its_task(routed, start_worker):
    await start_worker()
    await acall("t.queued_fail", SERVER)

    async def finished() -> bool:
        [row] = await task_rows()
        return row.status in ("SUCCESSFUL", "FAILED")

    await await_until(finished, 60, "the task to finish")
    [row] = await task_rows()
    assert row.status == "FAILED"
    assert row.exception_class_path == "floorchannels.signal_tasks.QueuedSignalFailed"
    assert "t.queued_fail" in row.traceback


async def test_a_project_task_pushes_to_the_window_its_user_a_topic_and_everyone(routed, start_worker):
    """A task of the project's own, given window.to_task(): what it sends from the worker
    reaches that window through each kind of target, and only the right ones elsewhere."""
    alice = await sync_to_async(User.objects.create_user)("alice", password="pw")
    headers = await sync_to_async(session_headers)(alice)
    key = await sync_to_async(make_key)(alice, topics=["news"])
    window = await open_window(key, headers)
    other_tab = await open_window(await sync_to_async(make_key)(alice), headers)
    stranger = await open_window(make_key())

    await start_worker()
    result = await notify.aenqueue(window=load_key(key).to_task(), text="ready")
    assert result.status == "READY"

    frames = [await window.receive(timeout=60) for _ in range(4)]
    assert {(f["signal"], f["kwargs"]["to"]) for f in frames} == {
        ("t.note", "window"),
        ("t.note", "user"),
        ("t.note", "topic"),
        ("t.note", "everyone"),
    }
    [tab_frames, stranger_frames] = await frames_before_marker(other_tab, stranger)
    assert sorted(f["kwargs"]["to"] for f in tab_frames) == ["everyone", "user"]
    assert [f["kwargs"]["to"] for f in stranger_frames] == ["everyone"]
    for each in (window, other_tab, stranger):
        await each.close()


async def test_a_countdown_becomes_the_tasks_run_after_and_is_respected(routed, start_worker):
    worker = await start_worker()
    key = make_key()
    window = await open_window(key)
    eta = time.time() + 3
    await acall("t.queued", SERVER, window=load_key(key), kwargs={"steps": 1}, eta=eta)
    [row] = await task_rows()
    assert abs(row.run_after - dt.datetime.fromtimestamp(eta, tz=dt.UTC)) < dt.timedelta(milliseconds=1)
    frame = await window.receive(timeout=60)
    assert time.time() >= eta, "the handler ran before its eta"
    assert frame["kwargs"] == {"done": 1, "total": 1}, worker.output()
    await window.close()


# In-process: the immediate backend, no worker -------------------------------------------------


def immediate_backend() -> dict:
    return {
        "default": {"BACKEND": "django_tasks_db.DatabaseBackend"},
        "immediate": {"BACKEND": f"{tasks.__name__}.backends.immediate.ImmediateBackend"},
    }


async def test_the_immediate_backend_runs_the_call_in_process_with_its_call_id():
    seen.clear()
    with override_settings(
        TASKS=immediate_backend(), FLOORCHANNELS={"TASK_QUEUES": {"immediate": "immediate"}}
    ):
        key = make_key()
        message_id = await acall("tq.seen", SERVER, window=load_key(key))
        [(window_id, queued_call)] = seen
        assert window_id == load_key(key).window_id
        assert (queued_call.id, queued_call.queue, queued_call.attempt) == (message_id, "immediate", 1)
        assert queued_call.entry  # the task result's id


async def test_a_call_whose_task_starts_after_it_expired_is_dropped():
    seen.clear()
    with override_settings(TASKS=immediate_backend(), FLOORCHANNELS={"TASK_QUEUES": {"*": "immediate"}}):
        await acall("tq.seen", SERVER, expires=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert seen == []
    assert metrics.snapshot().get("expired") == 1


async def test_a_delay_on_a_backend_that_cannot_defer_is_refused_before_anything_runs():
    seen.clear()
    with override_settings(TASKS=immediate_backend(), FLOORCHANNELS={"TASK_QUEUES": {"*": "immediate"}}):
        with pytest.raises(PublishError, match="cannot delay"):
            await acall("tq.seen", SERVER, countdown=5)
        assert seen == []


# Routes, checks, the window helper ------------------------------------------------------------


def test_routes_name_a_queue_or_all_of_them():
    with override_settings(
        FLOORCHANNELS={"TASK_QUEUES": {"*": "default", "mail": {"queue_name": "mail", "priority": 5}}}
    ):
        assert route_for("reports") == Route("default", "default", 0)
        assert route_for("mail") == Route("default", "mail", 5)
    with override_settings(FLOORCHANNELS={"TASK_QUEUES": {"reports": "default"}}):
        assert route_for("reports") == Route()
        assert route_for("slow") is None


def test_misrouted_queues_are_system_check_errors():
    routes = {
        "ok": "default",
        "missing": "nowhere",
        "bad name!": "default",
        "typo": {"backend": "default", "queu_name": "x"},
        "other-queue": {"queue_name": "not-served"},
        "number": 7,
    }
    with override_settings(FLOORCHANNELS={"TASK_QUEUES": routes}):
        errors = check_task_queues()
    assert {e.id for e in errors} == {"floorchannels.E013"}  # W010 only once the routes work
    text = "\n".join(e.msg for e in errors)
    assert len(errors) == 5, text
    for queue in ("missing", "bad name!", "typo", "other-queue", "number"):
        assert repr(queue) in text
    assert "'ok'" not in text
    with override_settings(FLOORCHANNELS={"TASK_QUEUES": {"ok": "default", "*": "default"}}):
        assert not [e for e in check_task_queues() if e.id == "floorchannels.E013"]


def test_a_worker_process_with_the_in_memory_layer_is_a_warning(routed):
    """The database backend's worker is another process: on the in-memory layer (tests'
    default) its handlers' signals could reach no window. The immediate backend runs in the
    web process, and a Redis layer reaches every process."""
    assert check_task_queues() == []  # the Redis layer
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}):
        [warning] = check_task_queues()
        assert (warning.id, "'tests'" in warning.msg, "'default'" in warning.msg) == (
            "floorchannels.W010",
            True,
            True,
        )
        with override_settings(TASKS=immediate_backend(), FLOORCHANNELS={"TASK_QUEUES": {"*": "immediate"}}):
            assert check_task_queues() == []


def test_no_worker_warning_leaves_out_queues_a_task_backend_serves(routed):
    """W008 is about floorchannels' own workers: a routed queue has the backend's."""
    with override_settings(FLOORCHANNELS={}):
        assert any(repr(QUEUE) in w.msg for w in check_queue_workers() if w.id == "floorchannels.W008")
    assert not any(repr(QUEUE) in w.msg for w in check_queue_workers())


def test_a_window_survives_the_trip_through_task_arguments():
    window = WindowInfo(window_id="w" * 40, user_pk="42", topics=("news", "room.7"))
    data = json.loads(json.dumps(window.to_task()))
    back = WindowInfo.from_task(data)
    assert (back.window_id, back.user_pk, back.topics) == ("w" * 40, "42", ("news", "room.7"))
    assert back.groups == window.groups
    assert WindowInfo.from_task(WindowInfo().to_task()).groups == WindowInfo().groups
    for bad in ({}, {"w": "x"}, "w" * 40, {"window_id": 1, "user_pk": None, "topics": []}):
        with pytest.raises(ValueError):
            WindowInfo.from_task(bad)
