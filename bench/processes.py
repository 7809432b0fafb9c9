"""Several floorchannels processes on one Redis against one: burst deliveries/s.

``python -m bench.processes --procs 1,2`` starts that many server processes (uvicorn or
daphne, each on its own port, all on one Redis pub/sub layer), spreads the same number of
sockets over them (one client process per server), publishes a burst from this process with
``acall(..., BROADCAST)`` (Redis carries each message to every server process once) and
reports deliveries/s over all sockets, each server's CPU per delivery, and Redis's own CPU
per publish (``INFO cpu``). Configurations alternate over ``--rounds``; the last line is
JSON with each configuration's median.

On this benchmark's machine the clients share the two cores with the servers, so two
server processes compete with two client processes, Redis and the publisher.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

from bench import run


def server_command(server: str, port: int) -> list[str]:
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", run.APPS["fc"]]
    return [sys.executable, "-m", "uvicorn", run.APPS["fc"], "--host", "127.0.0.1", "--port", str(port),
            "--lifespan", "off", "--log-level", "warning", "--no-access-log"]  # fmt: skip


async def measure(procs: int, args: argparse.Namespace, redis_url: str) -> dict:
    env = dict(
        os.environ, BENCH_LAYER="pubsub", BENCH_REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="bench.settings"
    )
    env["PYTHONPATH"] = str(run.ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    ports = [run.free_port() for _ in range(procs)]
    servers = [
        subprocess.Popen(
            server_command(args.server, port), cwd=run.ROOT, env=env, preexec_fn=run.raise_fd_limit
        )
        for port in ports
    ]
    clients: list[run.ClientProcess] = []
    try:
        for port, server in zip(ports, servers, strict=True):
            await run.wait_port(port, server)
        publish = run.layer_publisher("fc", "pubsub", redis_url)
        clients = [
            await run.ClientProcess.start(port, run.PATHS["fc"], True, env, protocol=args.protocol)
            for port in ports
        ]
        shares = [args.clients // procs + (i < args.clients % procs) for i in range(procs)]
        await asyncio.gather(
            *(c.ask("connect", n=k, concurrency=25) for c, k in zip(clients, shares, strict=True))
        )
        await publish({"s": -1, "t": time.time()})
        await asyncio.sleep(1.0)
        await asyncio.gather(*(c.ask("reset") for c in clients))
        seqs = list(range(args.messages))
        cpu0 = [run.cpu_seconds(s.pid) for s in servers]
        redis0 = run.redis_cpu_seconds(redis_url)
        start = time.time()
        for s in seqs:
            await publish({"s": s, "t": time.time()})
        parts = await asyncio.gather(
            *(c.ask("collect", seqs=seqs, quiet=args.quiet, timeout=args.timeout) for c in clients)
        )
        redis_cpu = run.redis_cpu_seconds(redis_url) - redis0
        cpu = [run.cpu_seconds(s.pid) - c0 for s, c0 in zip(servers, cpu0, strict=True)]
        deliveries = sum(p["deliveries"] for p in parts)
        last = max(p["last"] for p in parts if p["last"])
        return {
            "procs": procs,
            "server": args.server,
            "clients": args.clients,
            "deliveries": deliveries,
            "lost": sum(p["lost"] for p in parts),
            "deliveries_per_s": round(deliveries / (last - start)),
            "server_cpu_us_per_delivery": round(sum(cpu) * 1e6 / max(1, deliveries), 1),
            "redis_cpu_us_per_publish": round(redis_cpu * 1e6 / len(seqs), 1),
            "client_cpu_s": round(sum(p["cpu"] for p in parts), 2),
        }
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.ask("exit"), 10)
            with contextlib.suppress(ProcessLookupError):
                client.process.kill()
            await client.process.wait()
        for server in servers:
            run.stop(server)


async def amain(args: argparse.Namespace) -> dict:
    run.raise_fd_limit()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    redis = run.Redis()
    await asyncio.sleep(0.3)
    counts = [int(x) for x in args.procs.split(",")]
    results: dict[int, list[dict]] = {n: [] for n in counts}
    try:
        for number in range(args.rounds):
            for n in counts if number % 2 == 0 else counts[::-1]:
                result = await measure(n, args, redis.url)
                run.log(json.dumps(result))
                results[n].append(result)
    finally:
        redis.stop()
    keys = ("deliveries_per_s", "server_cpu_us_per_delivery", "redis_cpu_us_per_publish", "lost")
    return {
        "server": args.server,
        "clients": args.clients,
        "messages": args.messages,
        "protocol": args.protocol,
        "rounds": args.rounds,
        **{f"procs_{n}": {k: statistics.median(r[k] for r in rs) for k in keys} for n, rs in results.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--procs", default="1,2")
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quiet", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--protocol", type=int, choices=[1, 2], default=2, help="the sockets' protocol")
    args = parser.parse_args()
    sys.path.insert(0, str(run.ROOT))
    print(json.dumps(asyncio.run(amain(args))))


if __name__ == "__main__":
    main()
