"""Redis's own CPU per published message, taken apart (``python -m bench.redis_cost``).

Against a redis-server of its own, this process makes N of each call a floorchannels publish
makes, with the group message's real size, and reads Redis's CPU (``INFO cpu``) around each:
the history append as sent today (``EVAL`` with the script's text), the same by SHA
(``EVALSHA``), and the ``PUBLISH`` of the group message to 0, 1 and 2 subscribed processes
(pub/sub connections reading in the background). Prints one JSON line: µs of Redis CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from bench import run


async def amain(n: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    import redis.asyncio as aioredis

    from floorchannels.history import _APPEND

    server = run.Redis()
    await asyncio.sleep(0.3)
    client = aioredis.Redis.from_url(server.url)
    frame = json.dumps({"type": "signal", "signal": "bench.message", "kwargs": {"s": 1, "t": time.time()},
                        "id": "0" * 32})  # fmt: skip
    message = b"x" * 420  # a pub/sub group message carrying that frame, msgpack-encoded
    result: dict[str, float] = {}

    async def cost(name: str, call) -> None:
        before = run.redis_cpu_seconds(server.url)
        for i in range(n):
            await call(i)
        result[name] = round((run.redis_cpu_seconds(server.url) - before) * 1e6 / n, 1)

    keys = ("fc:epoch", "fc:seq:g", "fc:history:g")
    args = (1000, 3600, 86400)

    async def evaluate(i: int) -> None:
        await client.eval(_APPEND, 3, *keys, "e", *args, f"{time.time():.3f}", str(i), frame)

    sha = await client.script_load(_APPEND)

    async def evaluate_sha(i: int) -> None:
        await client.evalsha(sha, 3, *keys, "e", *args, f"{time.time():.3f}", str(i), frame)

    async def ping(i: int) -> None:
        await client.ping()

    subscribers: list = []
    readers: list[asyncio.Task] = []

    async def publish(i: int) -> None:
        await client.publish("fc-group", message)

    try:
        await cost("ping (a round trip, the floor)", ping)
        await cost("EVAL append (today)", evaluate)
        await cost("EVALSHA append", evaluate_sha)
        for count in (0, 1, 2):
            while len(subscribers) < count:
                pubsub = aioredis.Redis.from_url(server.url).pubsub()
                await pubsub.subscribe("fc-group")
                subscribers.append(pubsub)

                async def drain(pubsub=pubsub) -> None:
                    while True:
                        await pubsub.get_message(timeout=1.0)

                readers.append(asyncio.ensure_future(drain()))
            await cost(f"PUBLISH to {count} subscriber(s)", publish)
    finally:
        for reader in readers:
            reader.cancel()
        for pubsub in subscribers:
            await pubsub.aclose()
        await client.aclose()
        server.stop()
    return {"calls": n, "redis_cpu_us_per_call": result}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=5000)
    print(json.dumps(asyncio.run(amain(parser.parse_args().n))))


if __name__ == "__main__":
    main()
