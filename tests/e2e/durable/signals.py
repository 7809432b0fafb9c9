"""``qt.count``: a queued call that records each run in Redis, so a test can count them.

``durable:started`` lists every start (call number, worker pid, attempt, call id, time);
``durable:done`` counts finished runs per call number. With ``hold``, the call waits until
the test sets ``durable:go:<n>`` (a call a test can kill a worker in the middle of).
"""

import json
import os
import time

import redis
from django.conf import settings

from floorchannels import everyone, signal
from floorchannels.queues import current_call


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@signal("qt.count", is_allowed_to=everyone, queue="count")
def count(window, n: int, hold: bool = False) -> None:
    call = current_call()
    with _redis() as client:
        entry = {"n": n, "pid": os.getpid(), "attempt": call.attempt, "id": call.id, "at": time.time()}
        client.rpush("durable:started", json.dumps(entry))
        # Held until the test pushes the go token (a blocking pop: an event, not a poll).
        if hold and client.blpop([f"durable:go:{n}"], timeout=120) is None:
            raise TimeoutError(f"durable:go:{n} was never pushed")
        client.hincrby("durable:done", str(n), 1)
