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
