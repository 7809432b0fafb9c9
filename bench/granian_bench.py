"""floorchannels under granian against uvicorn, in the same run (issue 16).

Runs bench/run.py's trial (connects/s, memory per socket, burst, paced) for ``fc`` under
uvicorn and under granian, alternated. bench/run.py starts granian (``--interface asgi
--loop asyncio``) and takes RSS, CPU and py-spy from its worker process (:class:`run.Granian`).

``--system limit`` runs bench/limit.py's bare ASGI app instead (what the server itself costs).
``--sigterm`` instead measures what a deployment sees on SIGTERM with N windows open: how many
got 4503, and how long the server took to exit.

    python -m bench.granian_bench --clients 1000 --rounds 3
    python -m bench.granian_bench --clients 1000 --sigterm
    python -m bench.granian_bench --granian-args="--http1-buffer-size 65536"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench import run

GRANIAN_DEFAULT = list(run.GRANIAN)
Granian = run.Granian


async def trials(args: argparse.Namespace, redis_url: str) -> list[dict]:
    results = []
    plan = ["granian", "uvicorn"]
    for number in range(args.rounds):
        for name in plan if number % 2 == 0 else plan[::-1]:
            run.log(
                f"{args.system} under {name}, {args.layer} layer, {args.clients} clients (round {number + 1})"
            )
            results.append(await run.trial(args.system, name, args.layer, args, redis_url))
    return results


async def sigterm(args: argparse.Namespace, redis_url: str) -> dict:
    """N windows open, SIGTERM: how many the server ended, and how long it took to exit."""
    port = run.free_port()
    env = dict(
        os.environ, BENCH_LAYER=args.layer, BENCH_REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="bench.settings"
    )
    env["PYTHONPATH"] = str(run.ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    server = run.start_server("fc", "granian", port, env)
    clients: list[run.ClientProcess] = []
    try:
        await run.wait_port(port, server)
        clients = [
            await run.ClientProcess.start(port, run.PATHS["fc"], True, env) for _ in range(args.client_procs)
        ]
        shares = [
            args.clients // len(clients) + (i < args.clients % len(clients)) for i in range(len(clients))
        ]
        replies = await asyncio.gather(
            *(
                c.ask("connect", n=k, concurrency=args.concurrency)
                for c, k in zip(clients, shares, strict=True)
            )
        )
        connected = args.clients - sum(r["failed"] for r in replies)
        server.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(server.wait, 30)
        except subprocess.TimeoutExpired:
            pass
        # Sockets the server ended (the 4503 codes themselves: tests/e2e/test_shutdown.py).
        closed = [await c.ask("collect", seqs=[], quiet=0.1, timeout=1.0) for c in clients]
        return {
            "connected": connected,
            "exited_after_s": round(server.exited_after, 2) if server.exited_after is not None else None,
            "still_running": server.poll() is None,
            "sockets_ended": sum(c["closed"] for c in closed),
        }
    finally:
        for client in clients:
            client.process.kill()
            await client.process.wait()
        if server.poll() is None:
            server.kill()
            server.wait()


def medians(results: list[dict]) -> dict:
    line: dict[str, Any] = {}
    for name in ("granian", "uvicorn"):
        ours = [r for r in results if r["server"] == name]
        for key, get in {
            "deliveries_per_s": lambda r: r["burst"]["deliveries_per_s"],
            "p50_ms_paced": lambda r: (r.get("paced") or {}).get("p50_ms"),
            "p99_ms_paced": lambda r: (r.get("paced") or {}).get("p99_ms"),
            "p99_ms_paced10": lambda r: (r.get("paced10") or {}).get("p99_ms"),
            "rss_per_conn_kib": lambda r: r["rss_per_conn_kib"],
            "connects_per_s": lambda r: r["connects_per_s"],
            "lost": lambda r: r["burst"]["lost"],
        }.items():
            values = [v for v in map(get, ours) if v is not None]
            line[f"{name}_{key}"] = statistics.median(values) if values else None
    for key in (
        "deliveries_per_s",
        "p50_ms_paced",
        "p99_ms_paced",
        "p99_ms_paced10",
        "rss_per_conn_kib",
        "connects_per_s",
    ):
        g, u = line.get(f"granian_{key}"), line.get(f"uvicorn_{key}")
        line[f"ratio_{key}"] = round(g / u, 2) if g and u else None
    return line


async def amain(args: argparse.Namespace) -> dict:
    run.raise_fd_limit()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    run.GRANIAN[:] = [*GRANIAN_DEFAULT, *shlex.split(args.granian_args)]
    redis = None
    redis_url = args.redis_url or ""
    if not redis_url and args.layer != "memory":
        redis = run.Redis()
        redis_url = redis.url
        await asyncio.sleep(0.3)
    try:
        if args.sigterm:
            return await sigterm(args, redis_url)
        results = await trials(args, redis_url)
        if args.output:
            Path(args.output).write_text(json.dumps(results, indent=1))
        return medians(results)
    finally:
        if redis is not None:
            redis.stop()


def main(argv: list[str] | None = None) -> None:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--granian-args", default="", help="more granian options, one string")
    extra.add_argument("--system", choices=["fc", "limit"], default="fc", help="limit: the bare ASGI app")
    extra.add_argument("--sigterm", action="store_true", help="measure SIGTERM with the windows open")
    mine, rest = extra.parse_known_args(argv)
    args = run.parse(rest)
    args.granian_args, args.sigterm, args.system = mine.granian_args, mine.sigterm, mine.system
    print(json.dumps(asyncio.run(amain(args))))


if __name__ == "__main__":
    main()
