"""Churn soak: does a server process give back what connect/disconnect cycles take?

Starts its own redis-server (unless ``--redis-url``) and one floorchannels server process
(daphne or uvicorn), then runs ``--cycles`` cycles: ``--sockets`` windows connect at once
(hello with a window key and ``--protocol``, 2 by default -> welcome; present in one topic unless ``--no-presence``), all of
them disconnect, and the harness waits until the server has seen every disconnect. After
each cycle it prints the server's RSS, its Python heap (allocated blocks, after a full
collection), and the Redis connections it holds (``CLIENT LIST``), and at the peak of the
cycle too. The last line is one JSON object with the verdict: ``plateau`` when the second
half of the cycles grew neither the heap nor the Redis connections beyond noise.

``make soak`` runs the default (12 cycles of 500 sockets, pub/sub layer).
``--tracemalloc`` makes the server trace its allocations and print, after each cycle, the
source lines whose memory grew most since the previous cycle: the way to find a leak.

The server answers ``GET /soak/memory`` (a full collection, then its figures) beside the
bench application; nothing else of it differs from what :mod:`bench.run` measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOAK_TOPIC = "soak"


# The server side -------------------------------------------------------------------------

_previous: dict = {}


def _memory_report() -> dict:
    """Figures after a full collection; with tracemalloc on, what grew since last time."""
    import tracemalloc
    from collections import Counter

    from floorchannels import metrics

    gc.collect()
    report = {
        "rss_kib": _rss_kib(os.getpid()),
        "blocks": sys.getallocatedblocks(),
        "open": metrics.snapshot().get("connections_open", 0),
        "tasks": len(asyncio.all_tasks()),
    }
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
        )
        types = Counter(type(o).__name__ for o in gc.get_objects())
        if "snapshot" in _previous:
            stats = snapshot.compare_to(_previous["snapshot"], "traceback")
            report["top"] = [
                {
                    "kib": round(s.size_diff / 1024, 1),
                    "count": s.count_diff,
                    "where": s.traceback.format()[-6:],
                }
                for s in stats[:12]
                if s.size_diff > 0
            ]
            grown = {name: n - _previous["types"].get(name, 0) for name, n in types.items()}
            report["types"] = dict(sorted(grown.items(), key=lambda kv: -kv[1])[:12])
        _previous.update(snapshot=snapshot, types=types)
        report["holders"] = _holders("SignalConsumer")
    return report


def _holders(type_name: str, limit: int = 3) -> list[str]:
    """What keeps objects of ``type_name`` alive, for a few of them: referrer chains of
    up to five steps, by type (with a dict's first keys)."""
    chains = []
    found = [o for o in gc.get_objects() if type(o).__name__ == type_name][:limit]
    ignore = {id(found), id(chains)}
    for obj in found:
        chain, current = [], obj
        ignore.add(id(chain))
        for _ in range(5):
            referrers = gc.get_referrers(current)
            ignore.add(id(referrers))
            current = next(
                (r for r in referrers if id(r) not in ignore and type(r).__name__ != "frame"), None
            )
            del referrers
            if current is None:
                break
            label = type(current).__name__
            if label == "coroutine":
                label += f"({current.cr_code.co_qualname}:{current.cr_frame.f_lineno if current.cr_frame else '-'})"
            if isinstance(current, dict):
                label += "{" + ",".join(str(k)[:30] for k in list(current)[:4]) + "}"
            chain.append(label)
        chains.append(" <- ".join([type_name, *chain]))
    return chains


def _activity() -> dict:
    """What is still going on: open windows and running tasks (cheap, no collection)."""
    from floorchannels import metrics

    return {"open": metrics.snapshot().get("connections_open", 0), "tasks": len(asyncio.all_tasks())}


def _server_application():
    """bench.asgi's floorchannels application plus ``GET /soak/memory``."""
    if os.environ.get("SOAK_TRACEMALLOC"):
        import tracemalloc

        tracemalloc.start(int(os.environ["SOAK_TRACEMALLOC"]))
    from bench.asgi import fc_application

    async def application(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/soak/memory":
            body = json.dumps(_memory_report() if scope["query_string"] != b"light" else _activity()).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await fc_application(scope, receive, send)

    return application


def __getattr__(name: str):
    # ``bench.soak:application`` for the server; the harness never imports Django's app.
    if name == "application":
        globals()["application"] = _server_application()
        return globals()["application"]
    raise AttributeError(name)


# The harness ------------------------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


async def http_get(port: int, path: str) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(), 60)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head[:100])
    return json.loads(body)


def redis_clients(url: str) -> int:
    """Clients connected to Redis, less the one asking."""
    import redis

    with redis.Redis.from_url(url) as client:
        return len(client.client_list()) - 1


def hellos(n: int, presence: bool, protocol: int = 2) -> list[bytes]:
    from types import SimpleNamespace

    from django.contrib.auth.models import AnonymousUser

    from floorchannels import window_key

    request = SimpleNamespace(user=AnonymousUser())
    grants = {"topics": [SOAK_TOPIC], "presence": [SOAK_TOPIC]} if presence else {}
    return [
        json.dumps(
            {"type": "hello", "window_key": window_key(request, **grants), "protocol": protocol}
        ).encode()
        for _ in range(n)
    ]


async def cycle(
    port: int, path: str, n: int, concurrency: int, presence: bool, redis_url: str, protocol: int = 2
) -> dict:
    """N windows connect (at most ``concurrency`` at a time), then all disconnect."""
    from bench.client import Client, Socket

    client = Client("127.0.0.1", port, path, keys=False, protocol=protocol)
    frames = hellos(n, presence, protocol)
    limit = asyncio.Semaphore(concurrency)
    sockets: list[Socket] = []
    failed = 0

    async def one(hello: bytes) -> None:
        nonlocal failed
        async with limit:
            try:
                sockets.append(await client.open(hello))
            except (OSError, ConnectionError, TimeoutError):
                failed += 1

    started = time.monotonic()
    await asyncio.gather(*(one(hello) for hello in frames))
    connected = time.monotonic() - started
    peak = redis_clients(redis_url) if redis_url else None
    for socket in sockets:
        socket.transport.close()
    return {"connected": len(sockets), "failed": failed, "connect_s": round(connected, 2), "peak_redis": peak}


async def wait_settled(port: int, timeout: float = 120) -> dict:
    """Poll until the server has seen every disconnect and its count of running tasks
    held still for 2.5 s (the leaves and presence diffs of the cycle are done, and
    daphne, which forgets a closed connection on a one-second timer, has let go of its
    protocol objects), then take its figures."""
    deadline = time.monotonic() + timeout
    seen: list[int] = []
    while time.monotonic() < deadline:
        activity = await http_get(port, "/soak/memory?light")
        seen = [*seen[-24:], activity["tasks"]] if activity["open"] <= 0 else []
        if len(seen) == 25 and len(set(seen)) == 1:
            break
        await asyncio.sleep(0.1)
    else:
        log(f"    the server did not settle within {timeout} s: {activity}")
    return await http_get(port, "/soak/memory")


def verdict(rows: list[dict], sockets: int) -> dict:
    """Plateau: the heap's floor (the fewest allocated blocks after a full collection)
    over the second half of the cycles is less than 64 bytes per connect/disconnect above
    its floor over the first half (the first cycle, which warms everything up, left out),
    and the Redis connections held did not grow over the second half. Floors, because
    bounded caches that fill and are trimmed (the hub's recent message ids, daphne's
    closed connections) make single readings swing by thousands of blocks."""
    mid = max(1, len(rows) // 2)
    first, second = rows[1:mid] or rows[:1], rows[mid:]
    floor_growth = min(r["blocks"] for r in second) - min(r["blocks"] for r in first)
    heap_per_churn = floor_growth * 64 / (sockets * len(second))  # ~64 B per small block
    redis_growth = (second[-1]["redis"] - second[0]["redis"]) if second[0]["redis"] is not None else 0
    rss_growth = second[-1]["rss_kib"] - rows[mid - 1]["rss_kib"]
    return {
        "cycles": len(rows),
        "sockets": sockets,
        "rss_first_mib": round(rows[0]["rss_kib"] / 1024, 1),
        "rss_last_mib": round(rows[-1]["rss_kib"] / 1024, 1),
        "rss_bytes_per_churn_second_half": round(rss_growth * 1024 / (sockets * len(second)), 1),
        "heap_bytes_per_churn": round(heap_per_churn, 1),
        "redis_after_first": rows[0]["redis"],
        "redis_after_last": rows[-1]["redis"],
        "redis_peak": max((r["peak_redis"] or 0) for r in rows),
        "failed": sum(r["failed"] for r in rows),
        "plateau": heap_per_churn < 64 and redis_growth <= 0,
    }


async def amain(args: argparse.Namespace) -> dict:
    from bench.run import Redis, free_port, raise_fd_limit, stop, wait_port

    raise_fd_limit()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    redis = None
    redis_url = args.redis_url or ""
    if args.layer != "memory" and not redis_url:
        redis = Redis()
        redis_url = redis.url
    port = free_port()
    env = dict(
        os.environ, BENCH_LAYER=args.layer, BENCH_REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="bench.settings"
    )
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if args.tracemalloc:
        env["SOAK_TRACEMALLOC"] = str(args.tracemalloc)
    if args.server == "daphne":
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0",
                   "bench.soak:application"]  # fmt: skip
    else:
        command = [sys.executable, "-m", "uvicorn", "bench.soak:application", "--host", "127.0.0.1",
                   "--port", str(port), "--lifespan", "off", "--log-level", "warning", "--no-access-log"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env, preexec_fn=raise_fd_limit)
    rows: list[dict] = []
    try:
        if redis is not None:
            await wait_port(redis.port, redis.process)
        await wait_port(port, server, timeout=60)
        before = await http_get(port, "/soak/memory")
        log(f"server pid {server.pid} ({args.server}, {args.layer} layer): rss {before['rss_kib'] / 1024:.1f} MiB, "
            f"redis connections {redis_clients(redis_url) if redis_url else '-'}")  # fmt: skip
        for number in range(1, args.cycles + 1):
            figures = await cycle(
                port,
                "/ws/floorchannels/",
                args.sockets,
                args.concurrency,
                args.presence,
                redis_url,
                args.protocol,
            )
            report = await wait_settled(port)
            row = {
                "cycle": number,
                **figures,
                "rss_kib": report["rss_kib"],
                "blocks": report["blocks"],
                "tasks": report["tasks"],
                "open": report["open"],
                "redis": redis_clients(redis_url) if redis_url else None,
            }
            previous = rows[-1] if rows else {"rss_kib": before["rss_kib"], "blocks": before["blocks"]}
            rows.append(row)
            log(
                f"cycle {number:3}: {row['connected']} connected ({row['failed']} failed) in {row['connect_s']} s; "
                f"rss {row['rss_kib'] / 1024:.1f} MiB ({(row['rss_kib'] - previous['rss_kib']) * 1024 / args.sockets:+.0f} B/socket), "
                f"heap blocks {row['blocks']} ({row['blocks'] - previous['blocks']:+d}), tasks {row['tasks']}, "
                f"redis connections {row['redis']} (peak {row['peak_redis']})"
            )  # fmt: skip
            for entry in report.get("top", []):
                log(f"    +{entry['kib']} KiB ({entry['count']:+d} blocks): " + " | ".join(entry["where"]))
            for chain in report.get("holders", []):
                log(f"    held: {chain}")
            if report.get("types"):
                log(f"    objects grown: {report['types']}")
        return verdict(rows, args.sockets)
    finally:
        stop(server)
        if redis is not None:
            redis.stop()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=12)
    parser.add_argument("--sockets", type=int, default=500, help="windows per cycle")
    parser.add_argument("--concurrency", type=int, default=0, help="connects in flight (0: all at once)")
    parser.add_argument(
        "--layer", choices=["memory", "core", "pubsub"], default=os.environ.get("BENCH_LAYER", "pubsub")
    )
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument(
        "--no-presence", dest="presence", action="store_false", help="windows not present in a topic"
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL"))
    parser.add_argument(
        "--protocol",
        type=int,
        choices=[1, 2],
        default=2,
        help="the protocol the windows ask for in their hello",
    )
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="server traces allocations (FRAMES deep) and prints what grew per cycle")  # fmt: skip
    args = parser.parse_args(argv)
    args.concurrency = args.concurrency or args.sockets
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    sys.path.insert(0, str(ROOT))
    result = asyncio.run(amain(args))
    print(json.dumps(result))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
