"""The sample project, plus an app whose queued signal counts its runs in Redis
(tests/e2e/test_durable_queues.py). ``QUEUE_VISIBILITY_TIMEOUT`` comes from the environment
so the tests that kill a worker do not wait the default 30 s."""

import os

from sampleproject.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.e2e.durable"]  # noqa: F405
FLOORCHANNELS = {
    **FLOORCHANNELS,  # noqa: F405
    "QUEUE_VISIBILITY_TIMEOUT": float(os.environ.get("QUEUE_VISIBILITY_TIMEOUT", "30")),
    "QUEUE_SHUTDOWN_GRACE": float(os.environ.get("QUEUE_SHUTDOWN_GRACE", "10")),
}
