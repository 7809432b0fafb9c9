"""The queue worker (``runworker floorchannels.<queue>``): what it runs and what it skips."""

import pytest
from channels.testing import ApplicationCommunicator

from floorchannels import messages, metrics
from floorchannels.routing import worker_application
from floorchannels.windows import WindowInfo
from tests.conftest import await_until
from tests.testapp import signals

pytestmark = pytest.mark.django_db(transaction=True)


async def test_malformed_messages_are_skipped_and_the_worker_goes_on(caplog):
    """A message the worker cannot use (a rolling deploy, a stray sender) is counted and
    logged once; it does not end the worker, which runs the next call as usual."""
    worker = ApplicationCommunicator(
        worker_application, {"type": "channel", "channel": "floorchannels.tests"}
    )
    await worker.send_input({"type": "fc.run", "id": "no-signal"})
    await worker.send_input({"type": "fc.something_new", "payload": 1})
    window = WindowInfo(window_id="w1")
    await worker.send_input(
        messages.RUN.build(
            id="ok", queue="tests", signal="t.queued", kwargs={"steps": 0}, window=window.to_message()
        )
    )
    await await_until(lambda: signals.ran, 5, "the queued call to run")
    assert signals.ran == [("queued", 0, "w1")]
    assert metrics.snapshot()["layer_messages_invalid"] == 2
    assert sum(r.name == "floorchannels.messages" for r in caplog.records) == 2
    worker.stop()
