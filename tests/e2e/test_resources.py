"""Process resources stay flat however many synchronous calls a process makes.

A child process (this module run as a script) publishes with ``call()`` 1,000 times:
from its main thread, from eight threads at once, and from the threads of
``sync_to_async`` (as a sync view under ASGI does), with ``revoke()`` and
``presence_count()`` among them, against a real redis-server with each Redis layer. It
reports the Redis connections (``CLIENT LIST``) and open file descriptors after a
warm-up and at the end; it must also exit at once, though a background loop is running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.e2e

LAYERS = {
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_thousand_sync_calls_hold_no_more_connections_or_fds(layer):
    # Imported here: the child process runs this module before Django is set up.
    from tests.e2e.conftest import ROOT, Redis

    redis = Redis()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.test_resources", layer, redis.url],
            cwd=ROOT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = child.stdout.readline()  # the child's last word before it exits
            reported = time.monotonic()
            child.wait(30)
            exit_s = time.monotonic() - reported
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == 0 and line, child.stderr.read()[-3000:]
        report = json.loads(line)
        warm, end = report["warm"], report["end"]
        assert report["calls"] >= 1000
        # Bounded: the layer's own connections plus floorchannels' pool (which may have
        # grown to the calls' concurrency), and no other fd more than after the first calls.
        assert end["redis"] <= 2 + 16, report
        assert end["fds"] - end["redis"] <= warm["fds"] - warm["redis"], report
        # The exit does not wait for the background loop (a daemon thread).
        assert exit_s < 5, exit_s
    finally:
        redis.stop()


def _child(layer: str, url: str) -> None:
    import asyncio
    import threading

    import django

    django.setup()
    from asgiref.sync import sync_to_async
    from channels.layers import channel_layers
    from django.conf import settings

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": LAYERS[layer], "CONFIG": {"hosts": [url]}}}
    channel_layers.backends.clear()
    import redis as sync_redis

    from floorchannels import BROADCAST, call, presence
    from floorchannels.revocation import revoke

    counter = sync_redis.Redis.from_url(url)
    calls = 0

    def measure() -> dict:
        return {"redis": len(counter.client_list()) - 1, "fds": len(os.listdir("/proc/self/fd"))}

    def some(n: int) -> None:
        nonlocal calls
        for i in range(n):
            if i % 50 == 0:
                revoke(7)
                assert presence.presence_count("room") == 0
            call("t.published", "room" if i % 2 else BROADCAST, kwargs={"i": i})
            calls += 1

    def threaded(n: int) -> None:
        threads = [threading.Thread(target=some, args=(n,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    async def as_sync_views(n: int) -> None:
        await asyncio.gather(*(sync_to_async(some, thread_sensitive=False)(n) for _ in range(4)))

    some(10)
    threaded(3)
    asyncio.run(as_sync_views(4))
    warm = measure()
    some(400)
    threaded(50)
    asyncio.run(as_sync_views(50))
    end = measure()
    counter.close()
    print(json.dumps({"calls": calls, "warm": warm, "end": end}), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
