"""call()/acall(): server handlers, queues, delays and expiry, as a caller sees them."""

import datetime as dt
import time

import pytest
from asgiref.sync import sync_to_async

from floorchannels import BROADCAST, SERVER, USER, WINDOW, WindowInfo, acall, call, metrics
from floorchannels.arguments import InvalidArguments
from floorchannels.windows import load_key
from tests.conftest import await_until, make_key, open_window
from tests.testapp.signals import ran

pytestmark = pytest.mark.django_db(transaction=True)


def test_server_target_runs_inline_handlers_in_the_caller():
    call("t.server_only", SERVER, kwargs={"value": 3})
    assert ran == [("server_only", 3, None)]


def test_server_call_validates_arguments_and_names():
    with pytest.raises(InvalidArguments):
        call("t.server_only", SERVER, kwargs={"value": "three"})
    with pytest.raises(LookupError):
        call("t.not_registered", SERVER)


def test_targets_need_the_window_they_refer_to():
    with pytest.raises(ValueError, match="WINDOW"):
        call("x", WINDOW)
    with pytest.raises(ValueError, match="USER"):
        call("x", USER, window=WindowInfo(window_id="abc"))


def test_delay_needs_a_queue_for_inline_handlers():
    with pytest.raises(ValueError, match="queue"):
        call("t.server_only", SERVER, countdown=5)
    with pytest.raises(ValueError, match="aware"):
        call("x", BROADCAST, eta=dt.datetime(2030, 1, 1))


async def test_sync_call_reaches_windows_from_a_thread():
    window = await open_window(make_key())
    await sync_to_async(call)("from.thread", BROADCAST, kwargs={"n": 1})
    assert (await window.receive())["kwargs"] == {"n": 1}
    await window.close()


async def test_queued_signal_runs_and_reports_progress_to_its_window():
    """With the in-memory layer, queues run inside the web process (no worker can see them)."""
    window = await open_window(make_key())
    reply = await window.call("t.queued", steps=3)
    assert reply == {"type": "reply", "id": 1, "ok": True, "result": None, "queued": True}
    frames = [await window.receive() for _ in range(3)]
    assert [f["kwargs"]["done"] for f in frames] == [1, 2, 3]
    assert all(f["signal"] == "t.progress" for f in frames)
    assert ran == [("queued", 3, window.welcome["window_id"])]
    await window.close()


async def test_queued_call_is_checked_before_queueing():
    window = await open_window(make_key())
    reply = await window.call("t.queued", steps="many")
    assert reply["error"]["code"] == "invalid_arguments"
    # A valid call queued behind it: had the refused one been queued, it would have run first.
    assert (await window.call("t.queued", steps=1))["queued"] is True
    assert (await window.receive())["kwargs"] == {"done": 1, "total": 1}
    assert ran == [("queued", 1, window.welcome["window_id"])]
    await window.close()


async def test_countdown_delays_delivery():
    window = await open_window(make_key())
    sent = time.time()
    await acall("later", BROADCAST, countdown=0.5)
    frame = await window.receive(timeout=3)
    assert frame["signal"] == "later"
    assert time.time() - sent >= 0.45
    await window.close()


async def test_eta_delays_a_queued_signal():
    window = await open_window(make_key())
    info = load_key(make_key())
    info.window_id = window.welcome["window_id"]
    sent = time.time()
    await acall("t.queued", SERVER, window=info, kwargs={"steps": 1}, eta=time.time() + 0.5)
    frame = await window.receive(timeout=3)
    assert frame["signal"] == "t.progress" and time.time() - sent >= 0.45
    await window.close()


async def test_expired_messages_are_dropped_and_counted():
    window = await open_window(make_key())
    await acall("stale", BROADCAST, eta=time.time() - 10, expires=1)
    await acall("fresh", BROADCAST, expires=30)
    # The next frame is the fresh one: the stale one, sent before it, was dropped.
    assert (await window.receive())["signal"] == "fresh"
    assert metrics.snapshot().get("expired") == 1
    await window.close()


async def test_expired_queued_signal_does_not_run():
    info = WindowInfo(window_id="w1")
    await acall("t.queued", SERVER, window=info, kwargs={"steps": 1}, eta=time.time() - 10, expires=1)
    window = await open_window(make_key())  # starts the hub, which serves the queue
    await await_until(lambda: metrics.snapshot().get("expired") == 1, what="the expired signal to be dropped")
    # A valid one queued afterwards runs, and is the only one that did.
    await acall("t.queued", SERVER, window=info, kwargs={"steps": 2})
    await await_until(lambda: ran, what="the valid queued signal to run")
    assert ran == [("queued", 2, "w1")]
    await window.close()


async def test_user_instance_is_a_user_target():
    from django.contrib.auth.models import User

    from tests.conftest import session_headers

    def make():
        user = User.objects.create_user("dora", password="x")
        return user, session_headers(user)

    user, headers = await sync_to_async(make)()
    window = await open_window(make_key(user), headers)
    await acall("for.dora", [user])
    assert (await window.receive())["signal"] == "for.dora"
    await window.close()
