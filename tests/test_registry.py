import pytest

from floorchannels import everyone, signal
from floorchannels.permissions import server_side
from floorchannels.registry import registry


def test_decorator_registers_and_defaults_to_server_side():
    @signal("reg.one")
    def one(window):
        pass

    try:
        (handler,) = registry.get("reg.one")
        assert handler.func is one and handler.is_allowed_to is server_side and handler.queue is None
    finally:
        registry.unregister("reg.one")


def test_several_handlers_share_a_name_in_order():
    @signal("reg.two", is_allowed_to=everyone)
    def first(window):
        pass

    @signal("reg.two", is_allowed_to=everyone, queue="q1")
    async def second(window):
        pass

    try:
        assert [h.func for h in registry.get("reg.two")] == [first, second]
        assert "q1" in registry.queues()
    finally:
        registry.unregister("reg.two")
    assert registry.get("reg.two") == []


@pytest.mark.parametrize("name", ["", "has space", "a..b", ".a", "é"])
def test_invalid_names_are_refused(name):
    with pytest.raises(ValueError):
        signal(name)


def test_invalid_queue_and_permission_are_refused():
    with pytest.raises(ValueError):
        signal("ok", queue="no.dots")
    with pytest.raises(TypeError):
        signal("ok", is_allowed_to="everyone")


def test_autodiscovery_registered_the_test_apps_signals():
    assert "t.echo" in registry.names()


@pytest.mark.django_db(transaction=True)
async def test_hung_sync_handlers_never_stop_signed_in_windows_connecting(caplog):
    """Hung sync handlers fill their own threads, not the ones that check a connecting
    window's user: more of them than the default executor has threads are answered
    `timeout`, counted and logged, and a signed-in window still connects."""
    import os
    import threading
    from types import SimpleNamespace

    from asgiref.sync import sync_to_async
    from django.contrib.auth.models import User
    from django.test import override_settings

    from floorchannels import metrics, window_key
    from tests.conftest import make_key, nothing_before_marker, open_window, session_headers

    release = threading.Event()

    @signal("reg.hang", is_allowed_to=everyone)
    def hang(window):
        release.wait(60)

    user = await sync_to_async(User.objects.create_user)("carol", password="x")
    headers = await sync_to_async(session_headers)(user)
    # One more hung call than the loop's default executor has threads.
    hung = min(32, (os.cpu_count() or 1) + 4) + 1
    per_window = 4
    windows = []
    settings = {"SYNC_HANDLER_THREADS": 2, "CALL_TIMEOUT": 0.5, "MAX_CONCURRENT_CALLS": per_window}
    try:
        with override_settings(FLOORCHANNELS=settings):
            for start in range(0, hung, per_window):
                window = await open_window(make_key())
                windows.append(window)
                for call_id in range(start, min(hung, start + per_window)):
                    await window.ws.send_json_to(
                        {"type": "call", "id": call_id, "signal": "reg.hang", "kwargs": {}}
                    )
            replies = []
            for index, window in enumerate(windows):  # each window's own calls, one reply each
                for _ in range(min(hung, (index + 1) * per_window) - index * per_window):
                    replies.append(await window.receive(timeout=10))
            await nothing_before_marker(*windows)
            assert [r["type"] for r in replies] == ["reply"] * hung
            assert {r["error"]["code"] for r in replies} == {"timeout"}, replies[:2]

            signed_in = await open_window(
                window_key(SimpleNamespace(user=user)), headers
            )  # fails here when the user check waits behind the hung handlers
            assert signed_in.welcome["type"] == "welcome"
            windows.append(signed_in)
            assert (await signed_in.call("t.add", a=1, b=2))["result"] == 3
        assert metrics.snapshot().get("sync_handlers_saturated", 0) >= hung - 2
        warnings = [r for r in caplog.records if r.name == "floorchannels.registry"]
        assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    finally:
        release.set()
        registry.unregister("reg.hang")
        for window in windows:
            await window.close()
