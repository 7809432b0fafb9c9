"""The ASGI application of the slow-client and SIGTERM tests, for any ASGI server.

Websockets are floorchannels' own route. Over HTTP, the test drives the process from outside:

- ``GET /key``: a window key for an anonymous window (the test's raw sockets send it in hello);
- ``POST /broadcast?count=N&size=S``: publish N broadcast signals, each with an S-character
  payload, from inside the server (the in-memory layer cannot be reached from another
  process); answers when every message is published;
- ``GET /stats``: this process's id, resident memory (KiB) and floorchannels' metrics. The
  server's workers may be child processes (granian), so the test asks the process itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from types import SimpleNamespace
from urllib.parse import parse_qs

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.slow_settings")
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.auth.models import AnonymousUser  # noqa: E402

from floorchannels import BROADCAST, acall, metrics, window_key  # noqa: E402
from floorchannels.routing import websocket_urlpatterns  # noqa: E402
from tests.lifespan import serve_lifespan  # noqa: E402

SIGNAL = "slow.tick"
#: Yield to the event loop every this many publishes, so the hub drains the layer as the
#: burst goes rather than after it (the burst is not the subject of these tests).
_YIELD_EVERY = 50
urlpatterns: list = []  # ROOT_URLCONF of the settings: nothing is routed by Django here


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def broadcast(count: int, size: int) -> dict:
    pad = "x" * size
    started = time.monotonic()
    for i in range(count):
        await acall(SIGNAL, BROADCAST, kwargs={"i": i, "pad": pad})
        if i % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return {"published": count, "seconds": round(time.monotonic() - started, 3)}


async def respond(send, status: int, body: dict | str) -> None:
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    kind = b"text/plain" if isinstance(body, str) else b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def http(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        return await serve_lifespan(receive, send)
    while (await receive()).get("more_body"):
        pass
    query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    path = scope["path"]
    if path == "/key":
        await respond(send, 200, window_key(SimpleNamespace(user=AnonymousUser())))
    elif path == "/broadcast" and scope["method"] == "POST":
        result = await broadcast(int(query.get("count", "1")), int(query.get("size", "1024")))
        await respond(send, 200, result)
    elif path == "/stats":
        await respond(send, 200, {"pid": os.getpid(), "rss_kib": rss_kib(), "metrics": metrics.snapshot()})
    else:
        await respond(send, 404, "not found")


application = ProtocolTypeRouter(
    {"websocket": URLRouter(websocket_urlpatterns), "http": http, "lifespan": http}
)
