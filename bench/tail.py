"""Where the paced latency tail comes from: each paced message's time, taken apart.

``python -m bench.tail`` runs floorchannels (pub/sub layer, 1,000 sockets, the quick mode's
burst, then 1/s and 10/s) under daphne and uvicorn with the server's timestamps on
(``BENCH_TRACE``, see bench/asgi.py) and prints, per phase, the percentiles of:

- ``call``: the publish call in the publishing process (``acall``), of which ``append`` is
  the history append (a Redis script call) before the ``group_send``;
- ``received``: publish → the hub has the message (Redis pub/sub hop, the layer's reader,
  the hub's batch wait);
- ``fanout``: how long the hub took to hand the frame to every socket (``send_frame``);
- ``first`` / ``last``: publish → the first and the last socket received it;
- ``after``: the last socket's receipt minus the end of the fan-out (the server writing
  the frames out and the clients reading them);
- ``gc``: garbage collection time in the server during the message, ``lag``: the longest
  event loop stall (a 5 ms timer late by more than 5 ms) during it.

The slowest messages are listed with their parts. ``--rounds`` alternates the servers. The
sockets speak protocol 2 unless ``--protocol 1``; the trace follows the hub's messages, which
are the same under both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import run


def percentiles(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": run.percentile(values, 0.5),
        "p99": run.percentile(values, 0.99),
        "max": round(max(values), 1) if values else None,
    }


def read_trace(path: Path) -> tuple[dict[float, dict], list[dict], list[dict]]:
    batches: dict[float, dict] = {}
    collections, lags = [], []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "batch":
            for published, received in zip(event["published"], event["received"], strict=True):
                if published is not None:
                    batches[published] = dict(event, received=received, size=len(event["published"]))
        elif event["kind"] == "gc":
            collections.append(event)
        else:
            lags.append(event)
    return batches, collections, lags


def analyse(phase: dict, trace: Path, appends: list[tuple[float, float]]) -> dict:
    """Each paced message's parts (see the module docstring), and their percentiles."""
    batches, collections, lags = read_trace(trace)
    rows = []
    for seq, (start, end) in sorted(phase["calls"].items(), key=lambda item: int(item[0])):
        first, last = phase["spread_ms"][str(seq)]
        batch = batches.get(start)
        append = next(((b - a) * 1000 for a, b in appends if start <= a <= end), None)
        window = (start, start + last / 1000)
        gc_ms = sum(c["ms"] for c in collections if window[0] <= c["at"] <= window[1] + 0.001)
        full = [c for c in collections if window[0] <= c["at"] <= window[1] + 0.001 and c["generation"] == 2]
        lag = max((x["ms"] for x in lags if window[0] <= x["at"] <= window[1] + 0.01), default=0.0)
        row = {
            "seq": int(seq),
            "call": (end - start) * 1000,
            "append": append,
            "received": (batch["received"] - start) * 1000 if batch and batch["received"] else None,
            "fanout": (batch["end"] - batch["start"]) * 1000 if batch else None,
            "first": first,
            "last": last,
            "after": last - (batch["end"] - start) * 1000 if batch else None,
            "gc": gc_ms,
            "full_gc": len(full),
            "lag": lag,
            "batch": batch["size"] if batch else None,
        }
        rows.append({k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()})
    parts = ["call", "append", "received", "fanout", "first", "last", "after", "gc", "lag"]
    table = {k: percentiles([r[k] for r in rows if r[k] is not None]) for k in parts}
    slowest = sorted(rows, key=lambda r: r["last"], reverse=True)[:5]
    return {
        "messages": len(rows),
        "parts_ms": table,
        "slowest": slowest,
        "gc_in_phase_ms": round(sum(c["ms"] for c in collections), 1),
        "full_gcs_total": sum(1 for c in collections if c["generation"] == 2),
        "p99_ms": phase["p99_ms"],
        "p50_ms": phase["p50_ms"],
    }


def timed_appends() -> list[tuple[float, float]]:
    """Record every history append of this (publishing) process: (start, end)."""
    from floorchannels import history

    appends: list[tuple[float, float]] = []
    original = history.RedisHistory.append

    async def append(self, group, message_id, frame):
        start = time.time()
        try:
            return await original(self, group, message_id, frame)
        finally:
            appends.append((start, time.time()))

    history.RedisHistory.append = append
    return appends


async def amain(args: argparse.Namespace) -> list[dict]:
    run.raise_fd_limit()
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    appends = timed_appends()
    redis = run.Redis()
    await asyncio.sleep(0.3)
    reports = []
    try:
        servers = args.servers.split(",")
        for number in range(args.rounds):
            for server in servers if number % 2 == 0 else servers[::-1]:
                with tempfile.TemporaryDirectory() as trace_dir:
                    args.trace = trace_dir
                    run.log(f"fc under {server}, round {number + 1}")
                    result = await run.trial("fc", server, "pubsub", args, redis.url)
                    trace = Path(trace_dir) / f"{result['server_pid']}.jsonl"
                    report = {"server": server, "round": number + 1, "protocol": args.protocol}
                    for name in ("paced", "paced10"):
                        if name in result:
                            report[name] = analyse(result[name], trace, appends)
                    report["burst_deliveries_per_s"] = result["burst"]["deliveries_per_s"]
                    reports.append(report)
                    print(json.dumps(report), flush=True)
    finally:
        redis.stop()
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="daphne,uvicorn")
    parser.add_argument("--rounds", type=int, default=1)
    argv = sys.argv[1:]
    own, rest = parser.parse_known_args(argv)
    args = run.parse(rest)
    args.servers, args.rounds = own.servers, own.rounds
    sys.path.insert(0, str(run.ROOT))
    reports = asyncio.run(amain(args))
    for server in args.servers.split(","):
        for name in ("paced", "paced10"):
            values = [r[name]["p99_ms"] for r in reports if r["server"] == server and name in r]
            if values:
                run.log(f"{server} {name}: p99 median {statistics.median(values)} ms over {len(values)}")


if __name__ == "__main__":
    main()
