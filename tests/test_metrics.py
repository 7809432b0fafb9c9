import pytest
from prometheus_client import CollectorRegistry, generate_latest

from floorchannels import metrics
from tests.conftest import make_key, open_window

pytestmark = pytest.mark.django_db(transaction=True)


async def test_counters_follow_what_happens_and_reach_prometheus():
    registry = CollectorRegistry()
    metrics.register_prometheus(registry)
    window = await open_window(make_key())
    await window.call("t.add", a=1)
    await window.call("t.nope")
    snapshot = metrics.snapshot()
    assert snapshot["connections_open"] == 1
    assert snapshot["call_ok"] == 1 and snapshot["call_unknown_signal"] == 1
    await window.close()
    text = generate_latest(registry).decode()
    assert "floorchannels_call_ok_total 1.0" in text
    assert "floorchannels_connections_open 0.0" in text
