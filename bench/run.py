"""The benchmark harness: floorchannels, raw Channels, the bare "limit" app and peers, in one run.

For each system it starts its own server process (daphne, uvicorn or granian, one process), opens N
websocket clients from separate light client processes (:mod:`bench.client`), then:

1. connects/s: N sockets connecting (floorchannels: hello with a window key → welcome);
2. memory: server RSS growth per idle socket;
3. burst: M messages published as fast as possible to every socket (deliveries/s, lost,
   duplicated, latency, server CPU per delivery);
4. paced: messages at 1/s and at 10/s (publish→receive p50/p99).

floorchannels is published to with ``acall(..., BROADCAST)`` (raw Channels with
``group_send``) from this process when the layer is Redis; the in-memory layer cannot be
reached from another process, so then this process POSTs the messages to the server,
which publishes them (the burst in one request, paced messages one request each); the limit
app gets its messages as frames on a publisher websocket.

Under uvicorn the bare app also runs as ``hello``: its sockets exchange floorchannels' hello
(with a real window key) and a welcome of the same size, and nothing else. Its connects are
what any protocol with a hello costs in that server: the rest of floorchannels' connect is
its own work (key check, groups, history positions).

The peers are what a team would pick instead: Node.js Socket.IO 4.8 (bench/node/server.js,
installed there with ``npm ci``) and python-socketio under uvicorn (bench/pysocketio.py). The
clients speak Socket.IO to them over the plain websocket transport, and the harness publishes
by emitting ``publish`` on a socket of its own, which the server broadcasts to the room.

floorchannels' sockets speak protocol 2 (compact signals, a socket's signals of one hub batch
in one message); ``--protocol 1`` for the old frames. Sizes: ``bytes_per_delivery`` is the
payload of the messages per delivery (a batch's bytes shared by its signals);
``bytes_per_lone_frame`` a message carrying one signal, and ``envelope_bytes`` that less the
signal's kwargs as compact JSON (Socket.IO's ``42["m",...]`` the same way).

The last line printed is one JSON object (``make bench``), with ``vs_socketio`` and
``vs_pysocketio``: floorchannels' figures divided by the peer's, under each server.

``--full`` (``make bench-full``, bench/report.py) runs, in one go, the issue's target table
(every system at ``--clients`` over ``--rounds`` alternated rounds, floorchannels also under
granian), a sweep over ``--sizes``, several processes on one Redis and Redis's cost per call,
and writes them to docs/benchmarks.md with charts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIGNAL = "bench.message"
APPS = {
    "fc": "bench.asgi:fc_application",
    "raw": "bench.asgi:raw_application",
    "limit": "bench.limit:application",
    "hello": "bench.limit:application",
    "pysocketio": "bench.pysocketio:application",
}
SOCKETIO_PATH = "/socket.io/?EIO=4&transport=websocket"
PATHS = {
    "fc": "/ws/floorchannels/",
    "raw": "/ws/raw/",
    "limit": "/ws/",
    "hello": "/ws/hello/",
    "socketio": SOCKETIO_PATH,
    "pysocketio": SOCKETIO_PATH,
}
#: The bare app's systems: ``limit`` opens and holds sockets, ``hello`` also exchanges a
#: hello and a welcome as floorchannels does (bench/limit.py).
BARE = ("limit", "hello")
PEERS = {"socketio": "node", "pysocketio": "uvicorn"}  # the peer systems and their one server
NODE_DIR = ROOT / "bench" / "node"
# The columns compared with the peers: (figure, True when higher is better).
COLUMNS = {
    "deliveries_per_s": True,
    "p50_ms_paced": False,
    "p99_ms_paced": False,
    "p99_ms_paced10": False,
    "rss_per_conn_kib": False,
    "connects_per_s": True,
    "bytes_per_delivery": False,
    "bytes_per_lone_frame": False,
    "envelope_bytes": False,
}
TICK = os.sysconf("SC_CLK_TCK")


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


async def wait_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def profile(args: argparse.Namespace, system: str, pid: int, phase: str) -> subprocess.Popen | None:
    """py-spy on the floorchannels server for one phase (``--profile FILE --profile-phase``)."""
    if not args.profile or system != "fc" or args.profile_phase != phase:
        return None
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    suffix = Path(args.profile).suffix
    output = {".json": "speedscope", ".txt": "raw"}.get(suffix, "flamegraph")
    rate = os.environ.get("BENCH_PROFILE_RATE", "200")  # samples per second
    return subprocess.Popen([spy, "record", "--pid", str(pid), "-r", rate, "-o", args.profile, "-f", output])


def stop_profile(profiler: subprocess.Popen | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(30)


class Redis:
    """Our own redis-server on a free port, stopped by PID."""

    def __init__(self) -> None:
        self.port = free_port()
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop(self.process)


def redis_cpu_seconds(url: str) -> float | None:
    """Redis's own CPU time (``INFO cpu``), to report its cost per publish."""
    if not url:
        return None
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return info["used_cpu_user"] + info["used_cpu_sys"]


class ClientProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(
        cls,
        port: int,
        path: str,
        keys: bool,
        env: dict,
        socketio: bool = False,
        source: str | None = None,
        protocol: int = 2,
    ) -> ClientProcess:
        args = [sys.executable, "-m", "bench.client", "--port", str(port), "--path", path]
        args += ["--protocol", str(protocol)]
        args += ["--keys"] if keys else []
        args += ["--socketio"] if socketio else []
        args += ["--source", source] if source else []
        process = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=env, limit=2**26,
        )  # fmt: skip
        client = cls(process)
        assert (await client.read()).get("ready")
        return client

    async def read(self) -> dict:
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError("client process died")
        return json.loads(line)

    async def ask(self, cmd: str, **kwargs: object) -> dict:
        self.process.stdin.write(json.dumps({"cmd": cmd, **kwargs}).encode() + b"\n")
        await self.process.stdin.drain()
        return await self.read()


class HttpPublisher:
    """POST /publish over one keep-alive connection (a message's kwargs, or a list of them)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader = self.writer = None

    async def __call__(self, kwargs: dict | list[dict]) -> None:
        body = json.dumps(kwargs).encode()
        for attempt in (1, 2):  # the server may have closed an idle keep-alive connection
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writer.write(
                b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            try:
                head = await self.reader.readuntil(b"\r\n\r\n")
                break
            except (asyncio.IncompleteReadError, ConnectionError):
                self.close()
                self.writer = None
                if attempt == 2:
                    raise
        if not head.startswith(b"HTTP/1.1 204"):
            raise RuntimeError(head[:100])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class WebsocketPublisher:
    """Text frames on the limit app's ``/publish`` socket (pings answered in the background)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.writer = None

    async def __call__(self, kwargs: dict) -> None:
        from bench.client import HANDSHAKE, client_frame

        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writer.write(HANDSHAKE.format(path="/publish", host="127.0.0.1", port=self.port).encode())
            assert (await self.reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            self.pongs = asyncio.ensure_future(self._answer_pings())
        self.writer.write(client_frame(1, json.dumps(kwargs).encode()))
        await self.writer.drain()

    async def _answer_pings(self) -> None:
        from bench.client import client_frame

        with contextlib.suppress(Exception):
            while True:
                head = await self.reader.readexactly(2)
                length = head[1] & 0x7F
                if length == 126:
                    length = int.from_bytes(await self.reader.readexactly(2), "big")
                elif length == 127:
                    length = int.from_bytes(await self.reader.readexactly(8), "big")
                payload = await self.reader.readexactly(length)
                if head[0] & 0x0F == 9:
                    self.writer.write(client_frame(10, payload))

    def close(self) -> None:
        if self.writer is not None:
            self.pongs.cancel()
            self.writer.close()


class SocketIOPublisher(WebsocketPublisher):
    """A Socket.IO socket of the harness's own that emits ``publish`` (the server broadcasts it).

    Engine.IO v4 over the websocket transport: the server's ``0{...}`` open, our ``40``
    connect and the server's ``40{...}``, then ``42["publish", {...}]`` per message; the
    server's pings (``2``) are answered with ``3`` in the background, websocket pings
    with pongs.
    """

    async def __call__(self, kwargs: dict) -> None:
        try:
            await self._emit(kwargs)
        except ConnectionError:
            # A server busy with a long burst may miss our pong and drop this socket
            # (python-socketio at 10,000 sockets): publish on a new one.
            self.close()
            self.writer = None
            await self._emit(kwargs)

    async def _emit(self, kwargs: dict) -> None:
        from bench.client import HANDSHAKE, client_frame

        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writer.write(HANDSHAKE.format(path=SOCKETIO_PATH, host="127.0.0.1", port=self.port).encode())
            assert (await self.reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            assert (await self._packet()).startswith(b"0")
            self.writer.write(client_frame(1, b"40"))
            assert (await self._packet()).startswith(b"40")
            self.pongs = asyncio.ensure_future(self._answer_pings())
        self.writer.write(client_frame(1, b"42" + json.dumps(["publish", kwargs]).encode()))
        await self.writer.drain()

    async def _packet(self) -> bytes:
        """The next text frame's payload; websocket pings (uvicorn's, every 20 s) answered."""
        from bench.client import client_frame

        while True:
            head = await self.reader.readexactly(2)
            length = head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(length)
            if head[0] & 0x0F == 9:
                self.writer.write(client_frame(10, payload))
            else:
                return payload

    async def _answer_pings(self) -> None:
        from bench.client import client_frame

        with contextlib.suppress(Exception):
            while True:
                if (await self._packet()) == b"2":  # Engine.IO ping
                    self.writer.write(client_frame(1, b"3"))


def node_command(port: int) -> list[str]:
    """``node bench/node/server.js PORT``, after ``npm ci`` there if its packages are missing."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("the Node.js Socket.IO peer needs node (or run with --no-peers)")
    if not (NODE_DIR / "node_modules" / "socket.io").is_dir():
        log("installing bench/node's packages (npm ci)")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True)
    return [node, str(NODE_DIR / "server.js"), str(port)]


#: granian's command line before its port and app: the asyncio loop (the ASGI interface's
#: default would be its own), one worker.
GRANIAN = ["-m", "granian", "--interface", "asgi", "--loop", "asyncio", "--host", "127.0.0.1",
           "--log-level", "warning"]  # fmt: skip


def children(pid: int) -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


class Granian:
    """A granian server seen as a ``subprocess.Popen`` whose PID is its worker's.

    granian serves from a worker process, a child of the one started: RSS, CPU and py-spy
    must look at the worker. On SIGTERM the main process stops its workers; a worker that
    does not stop would outlive a killed main process, so :meth:`kill` kills it by PID too.
    """

    def __init__(self, command: list[str], **kwargs: object) -> None:
        self.process = subprocess.Popen(command, **kwargs)
        self.signalled: float | None = None
        self.exited_after: float | None = None
        self._worker: int | None = None

    @property
    def pid(self) -> int:
        if self._worker is None:
            deadline = time.monotonic() + 30
            while not (found := children(self.process.pid)):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("granian started no worker")
                time.sleep(0.05)
            self._worker = found[0]
        return self._worker

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def poll(self) -> int | None:
        return self.process.poll()

    def send_signal(self, signum: int) -> None:
        if signum == signal.SIGTERM and self.signalled is None:
            self.signalled = time.monotonic()
        self.process.send_signal(signum)

    def wait(self, timeout: float | None = None) -> int:
        code = self.process.wait(timeout)
        if self.signalled is not None and self.exited_after is None:
            self.exited_after = time.monotonic() - self.signalled
        return code

    def kill(self) -> None:
        for pid in [self._worker] if self._worker else children(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.kill()


def server_command(system: str, server: str, port: int) -> list[str]:
    """The command line serving ``system`` under ``server`` (daphne, uvicorn, granian, node)."""
    if server == "node":
        return node_command(port)
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", APPS[system]]
    if server == "granian":
        return [sys.executable, *GRANIAN, "--port", str(port), APPS[system]]
    # --loop auto: uvloop when installed (loops() says which). BENCH_UVICORN_WS picks
    # uvicorn's websocket implementation (--ws; default auto: websockets).
    return [sys.executable, "-m", "uvicorn", APPS[system], "--host", "127.0.0.1", "--port", str(port),
            "--lifespan", "off", "--log-level", "warning", "--no-access-log",
            "--ws", os.environ.get("BENCH_UVICORN_WS", "auto")]  # fmt: skip


def start_server(system: str, server: str, port: int, env: dict) -> subprocess.Popen | Granian:
    command = server_command(system, server, port)
    kind = Granian if server == "granian" else subprocess.Popen
    return kind(command, cwd=ROOT, env=env, preexec_fn=raise_fd_limit)


def loops() -> dict[str, str]:
    """The event loop each Python server runs on (uvicorn's ``--loop auto`` takes uvloop when
    it is installed; daphne runs Twisted's asyncio reactor; granian is given asyncio)."""
    import importlib.metadata as metadata
    import importlib.util

    uvloop = importlib.util.find_spec("uvloop") is not None
    return {
        "uvicorn": f"uvloop {metadata.version('uvloop')}" if uvloop else "asyncio",
        "daphne": "asyncio (Twisted's asyncioreactor)",
        "granian": "asyncio (--loop asyncio)",
    }


def layer_publisher(system: str, layer: str, redis_url: str):
    """Publish from this process through the channel layer (Redis layers only)."""
    from channels.layers import channel_layers
    from django.conf import settings

    from bench.settings import channel_layers as layer_config
    from floorchannels import BROADCAST, acall

    settings.CHANNEL_LAYERS = layer_config(layer, redis_url)
    channel_layers.backends.clear()
    if system == "fc":

        async def publish(kwargs: dict) -> None:
            await acall(SIGNAL, BROADCAST, kwargs=kwargs)

    else:
        layer_instance = channel_layers["default"]

        async def publish(kwargs: dict) -> None:
            await layer_instance.group_send("bench", {"type": "bench.message", "kwargs": kwargs})

    return publish


async def trial(system: str, server: str, layer: str, args: argparse.Namespace, redis_url: str) -> dict:
    """One system under one server: connect, memory, burst, paced. Returns its figures."""
    port = free_port()
    env = dict(
        os.environ, BENCH_LAYER=layer, BENCH_REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="bench.settings"
    )
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if getattr(args, "trace", None):
        env["BENCH_TRACE"] = args.trace  # bench/asgi.py's timestamps (bench/tail.py)
    process = start_server(system, server, port, env)
    clients: list[ClientProcess] = []
    socketio = system in PEERS
    if socketio:
        http = SocketIOPublisher(port)
    else:
        http = WebsocketPublisher(port) if system in BARE else HttpPublisher(port)
    result: dict = {
        "system": system,
        "server": server,
        "layer": layer,
        "clients": args.clients,
        "messages": args.messages,
        "protocol": getattr(args, "protocol", 2) if system == "fc" else None,
    }
    try:
        await wait_port(port, process)
        pid = result["server_pid"] = process.pid
        publish = (
            http
            if system in BARE or socketio or layer == "memory"
            else layer_publisher(system, layer, redis_url)
        )
        clients = [
            await ClientProcess.start(
                port,
                PATHS[system],
                system in ("fc", "hello"),  # the hello system's hellos carry real keys too
                env,
                socketio,
                f"127.0.0.{i + 2}" if args.sources else None,
                getattr(args, "protocol", 2),
            )
            for i in range(args.client_procs)
        ]
        n = args.clients
        warm = max(1, min(50, n // 10))
        await clients[0].ask("connect", n=warm)
        await publish({"s": -1, "t": time.time()})  # warms the publish path
        await asyncio.sleep(1.0)
        rss0 = rss_kib(pid)
        rest = n - warm
        profiler = profile(args, system, pid, "connect")
        if profiler is not None:
            await asyncio.sleep(1.0)
        cpu0 = cpu_seconds(pid)
        uses_redis = layer != "memory" and system not in (*BARE, *PEERS)
        redis_cpu0 = redis_cpu_seconds(redis_url) if uses_redis else None
        shares = [rest // len(clients) + (i < rest % len(clients)) for i in range(len(clients))]
        replies = await asyncio.gather(
            *(
                c.ask("connect", n=k, concurrency=args.concurrency)
                for c, k in zip(clients, shares, strict=True)
            )
        )
        cpu = cpu_seconds(pid) - cpu0
        redis_cpu = redis_cpu_seconds(redis_url) - redis_cpu0 if redis_cpu0 is not None else None
        stop_profile(profiler)
        failed = sum(r["failed"] for r in replies)
        elapsed = max(r["t1"] for r in replies) - min(r["t0"] for r in replies)
        result["connect_failed"] = failed
        result["connects_per_s"] = round(rest / elapsed) if rest else None
        result["server_cpu_us_per_connect"] = round(cpu * 1e6 / max(1, rest))
        # Redis shares the cores: the history positions read and the window's layer group.
        result["redis_cpu_us_per_connect"] = (
            round(redis_cpu * 1e6 / max(1, rest)) if redis_cpu is not None else None
        )
        result["client_cpu_connect_s"] = round(sum(r["cpu"] for r in replies), 2)
        await asyncio.sleep(2.0)
        result["rss_per_conn_kib"] = round((rss_kib(pid) - rss0) / max(1, rest), 1)
        result["rss_mib"] = round(rss_kib(pid) / 1024, 1)
        seq = 0

        async def phase(count: int, rate: float | None) -> dict:
            nonlocal seq
            seqs = list(range(seq, seq + count))
            seq += count
            calls: dict[int, tuple[float, float]] = {}  # seq -> publish call's start and end
            await asyncio.gather(*(c.ask("reset") for c in clients))
            profiler = profile(args, system, pid, "burst" if rate is None else f"paced{rate:g}")
            if profiler is not None:
                await asyncio.sleep(1.0)
            cpu0 = cpu_seconds(pid)
            redis_cpu0 = redis_cpu_seconds(redis_url) if layer != "memory" and system not in BARE else None
            start = time.time()
            if rate is None and isinstance(publish, HttpPublisher):
                # One request carrying the whole burst: the server publishes it in a loop.
                # A request per message would measure HTTP round trips to a busy server.
                await publish([{"s": s, "t": time.time()} for s in seqs])
            else:
                for i, s in enumerate(seqs):
                    if rate:
                        delay = start + i / rate - time.time()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    before = time.time()
                    await publish({"s": s, "t": before})
                    calls[s] = (before, time.time())
            published = time.time()
            parts = await asyncio.gather(
                *(c.ask("collect", seqs=seqs, quiet=args.quiet, timeout=args.timeout) for c in clients)
            )
            cpu = cpu_seconds(pid) - cpu0
            redis_cpu = redis_cpu_seconds(redis_url) - redis_cpu0 if redis_cpu0 is not None else None
            stop_profile(profiler)
            latencies = [x for p in parts for x in p["latencies_ms"]]
            spread: dict[str, list[float]] = {}
            for p in parts:
                for s, (low, high) in p["spread_ms"].items():
                    first, last = spread.get(s, (low, high))
                    spread[s] = [min(first, low), max(last, high)]
            deliveries = sum(p["deliveries"] for p in parts)
            size = sum(p["bytes"] for p in parts)
            lone = sum(p["lone"] for p in parts)
            messages = sum(p["signal_messages"] for p in parts)
            last = max((p["last"] for p in parts if p["last"]), default=published)
            return {
                "deliveries": deliveries,
                "lost": sum(p["lost"] for p in parts),
                "duplicated": sum(p["duplicated"] for p in parts),
                "deliveries_per_s": round(deliveries / max(1e-9, last - start)),
                # Payload bytes per delivery, a batch's bytes shared by its signals.
                "bytes_per_delivery": round(size / deliveries, 1) if deliveries else None,
                # A message carrying one signal, and that less the signal's kwargs (compact JSON).
                "bytes_per_lone_frame": round(sum(p["lone_bytes"] for p in parts) / lone, 1)
                if lone
                else None,
                "envelope_bytes": round(sum(p["envelope_bytes"] for p in parts) / lone, 1) if lone else None,
                "deliveries_per_message": round(deliveries / messages, 2) if messages else None,
                "publish_s": round(published - start, 3),
                "p50_ms": percentile(latencies, 0.50),
                "p99_ms": percentile(latencies, 0.99),
                "server_cpu_us_per_delivery": round(cpu * 1e6 / deliveries, 1) if deliveries else None,
                # Redis's CPU over the phase per message published (history append and
                # publish, the hub's reads; plus what else Redis did meanwhile).
                "redis_cpu_us_per_publish": round(redis_cpu * 1e6 / count, 1)
                if redis_cpu is not None
                else None,
                "client_cpu_s": round(sum(p["cpu"] for p in parts), 2),
                "closed": sum(p["closed"] for p in parts),
                "first_ms": [round(spread[k][0]) for k in sorted(spread, key=int)] if rate else None,
                "last_ms": [round(spread[k][1]) for k in sorted(spread, key=int)] if rate else None,
                # The publish call itself (floorchannels: history append + group_send).
                "publish_call_ms": percentile([(b - a) * 1000 for a, b in calls.values()], 0.99)
                if rate
                else None,
                "spread_ms": spread if getattr(args, "trace", None) else None,
                "calls": calls if getattr(args, "trace", None) else None,
            }

        result["burst"] = await phase(args.messages, None)
        log(f"  {system}/{server}/{layer} burst: {result['burst']}")
        if args.paced:
            result["paced"] = await phase(args.paced, 1.0)
            log(f"  {system}/{server}/{layer} paced 1/s: {result['paced']}")
        if args.paced10:
            result["paced10"] = await phase(args.paced10, 10.0)
            log(f"  {system}/{server}/{layer} paced 10/s: {result['paced10']}")
        return result
    finally:
        http.close()
        for client in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.ask("exit"), 10)
            with contextlib.suppress(ProcessLookupError):
                client.process.kill()
            await client.process.wait()
        stop(process)


def figures(trial: dict | None) -> dict:
    """One trial's comparable columns (None where the trial did not run)."""
    trial = trial or {}

    def get(phase: str, key: str) -> object:
        return trial.get(phase, {}).get(key)

    return {
        **lone_frame(trial),
        "deliveries_per_s": get("burst", "deliveries_per_s"),
        "lost": get("burst", "lost"),
        "p50_ms_paced": get("paced", "p50_ms"),
        "p99_ms_paced": get("paced", "p99_ms"),
        "p99_ms_paced10": get("paced10", "p99_ms"),
        "rss_per_conn_kib": trial.get("rss_per_conn_kib"),
        "connects_per_s": trial.get("connects_per_s"),
        "bytes_per_delivery": get("burst", "bytes_per_delivery"),
    }


def lone_frame(trial: dict | None) -> dict:
    """The size of a message carrying one signal and its envelope, from the first phase that
    had such messages: paced at 1/s each message is alone, a burst may batch them all."""
    for phase in ("paced", "paced10", "burst"):
        figures = (trial or {}).get(phase, {})
        if figures.get("bytes_per_lone_frame") is not None:
            return {key: figures[key] for key in ("bytes_per_lone_frame", "envelope_bytes")}
    return {"bytes_per_lone_frame": None, "envelope_bytes": None}


def summary(layer: str, trials: dict[tuple[str, str], dict]) -> dict:
    """The JSON line of quick mode, without its ratios (:func:`add_ratios`)."""
    fc, raw, limit = trials[("fc", "daphne")], trials[("raw", "daphne")], trials[("limit", "daphne")]

    def get(trial: dict | None, phase: str, key: str) -> object:
        return (trial or {}).get(phase, {}).get(key)

    line = {
        "clients": fc["clients"],
        "messages": fc["messages"],
        "protocol": fc["protocol"],
        "layer": layer,
        "server": "daphne",
        "fc_deliveries_per_s": fc["burst"]["deliveries_per_s"],
        "raw_deliveries_per_s": raw["burst"]["deliveries_per_s"],
        "limit_deliveries_per_s": limit["burst"]["deliveries_per_s"],
        "fc_lost": fc["burst"]["lost"],
        "raw_lost": raw["burst"]["lost"],
        "limit_lost": limit["burst"]["lost"],
        "fc_duplicated": fc["burst"]["duplicated"],
        "fc_p99_ms_burst": fc["burst"]["p99_ms"],
        "raw_p99_ms_burst": raw["burst"]["p99_ms"],
        "fc_p50_ms_paced": get(fc, "paced", "p50_ms"),
        "fc_p99_ms_paced": get(fc, "paced", "p99_ms"),
        "raw_p99_ms_paced": get(raw, "paced", "p99_ms"),
        "limit_p99_ms_paced": get(limit, "paced", "p99_ms"),
        "fc_p99_ms_paced10": get(fc, "paced10", "p99_ms"),
        "limit_p99_ms_paced10": get(limit, "paced10", "p99_ms"),
        "fc_cpu_us_per_delivery": fc["burst"]["server_cpu_us_per_delivery"],
        "fc_redis_cpu_us_per_publish": fc["burst"].get("redis_cpu_us_per_publish"),
        "raw_cpu_us_per_delivery": raw["burst"]["server_cpu_us_per_delivery"],
        "limit_cpu_us_per_delivery": limit["burst"]["server_cpu_us_per_delivery"],
        "fc_rss_per_conn_kib": fc["rss_per_conn_kib"],
        "raw_rss_per_conn_kib": raw["rss_per_conn_kib"],
        "limit_rss_per_conn_kib": limit["rss_per_conn_kib"],
        "fc_connects_per_s": fc["connects_per_s"],
        "fc_cpu_us_per_connect": fc.get("server_cpu_us_per_connect"),
        "limit_cpu_us_per_connect": limit.get("server_cpu_us_per_connect"),
        "raw_connects_per_s": raw["connects_per_s"],
        "limit_connects_per_s": limit["connects_per_s"],
        "fc_bytes_per_delivery": fc["burst"]["bytes_per_delivery"],
        "fc_deliveries_per_message": fc["burst"]["deliveries_per_message"],
        "limit_bytes_per_delivery": limit["burst"]["bytes_per_delivery"],
        **{f"fc_{key}": value for key, value in lone_frame(fc).items()},
    }
    for system in ("fc", "limit", "hello"):
        uv = trials.get((system, "uvicorn"))
        if uv:
            line[f"uvicorn_{system}_deliveries_per_s"] = uv["burst"]["deliveries_per_s"]
            line[f"uvicorn_{system}_lost"] = uv["burst"]["lost"]
            line[f"uvicorn_{system}_p50_ms_paced"] = get(uv, "paced", "p50_ms")
            line[f"uvicorn_{system}_p99_ms_paced"] = get(uv, "paced", "p99_ms")
            line[f"uvicorn_{system}_p99_ms_paced10"] = get(uv, "paced10", "p99_ms")
            line[f"uvicorn_{system}_rss_per_conn_kib"] = uv["rss_per_conn_kib"]
            line[f"uvicorn_{system}_connects_per_s"] = uv["connects_per_s"]
            line[f"uvicorn_{system}_cpu_us_per_connect"] = uv.get("server_cpu_us_per_connect")
            line[f"uvicorn_{system}_bytes_per_delivery"] = uv["burst"]["bytes_per_delivery"]
            line[f"uvicorn_{system}_deliveries_per_message"] = uv["burst"]["deliveries_per_message"]
            for key, value in lone_frame(uv).items():
                line[f"uvicorn_{system}_{key}"] = value
    for peer, server in PEERS.items():
        if (peer, server) in trials:
            for column, value in figures(trials[(peer, server)]).items():
                line[f"{peer}_{column}"] = value
    return line


def ratio(ours: object, theirs: object) -> float | None:
    if not isinstance(ours, (int, float)) or not isinstance(theirs, (int, float)) or not theirs:
        return None
    return round(ours / theirs, 2)


def add_ratios(line: dict) -> dict:
    """floorchannels ÷ raw, ÷ limit and ÷ each peer (``vs_socketio``: per server, per column).

    A ratio above 1 is better for deliveries/s and connects/s, below 1 for the others.
    """
    line["ratio"] = ratio(line["fc_deliveries_per_s"], line["raw_deliveries_per_s"])
    line["ratio_to_limit"] = ratio(line["fc_deliveries_per_s"], line["limit_deliveries_per_s"])
    for peer in PEERS:
        if f"{peer}_deliveries_per_s" not in line:
            continue
        line[f"vs_{peer}"] = {
            server: {
                column: ratio(line.get(f"{prefix}{column}"), line[f"{peer}_{column}"]) for column in COLUMNS
            }
            for server, prefix in (("daphne", "fc_"), ("uvicorn", "uvicorn_fc_"))
            if f"{prefix}deliveries_per_s" in line
        }
    return line


def median_line(lines: list[dict]) -> dict:
    """Each figure's median over alternated rounds (text and the trial lists from the first)."""
    merged = dict(lines[0])
    for key, value in merged.items():
        values = [line.get(key) for line in lines]
        if isinstance(value, (int, float)) and all(isinstance(v, (int, float)) for v in values):
            middle = statistics.median(values)
            merged[key] = round(middle, 1) if isinstance(middle, float) else middle
    merged["rounds"] = len(lines)
    return merged


async def run_quick(args: argparse.Namespace, redis_url: str) -> dict:
    plan = [(s, "daphne") for s in ("fc", "raw", "limit")]
    plan += [(s, "uvicorn") for s in ("fc", "limit", "hello")] if args.uvicorn else []
    plan += list(PEERS.items()) if args.peers else []
    if args.only:
        plan = [(s, server) for s, server in plan if f"{s}/{server}" in args.only.split(",")]
    rounds: list[dict[tuple[str, str], dict]] = []
    for number in range(args.rounds):
        # Alternate: every system once per round, the order reversed every other round.
        trials: dict[tuple[str, str], dict] = {}
        for system, server in plan if number % 2 == 0 else plan[::-1]:
            log(f"{system} under {server}, {args.layer} layer, {args.clients} clients (round {number + 1})")
            trials[(system, server)] = await trial(system, server, args.layer, args, redis_url)
        rounds.append(trials)
    everything = [t for trials in rounds for t in trials.values()]
    if args.output:
        Path(args.output).write_text(json.dumps(everything, indent=1))
    if args.only:
        return {"trials": everything}
    line = add_ratios(median_line([summary(args.layer, trials) for trials in rounds]))
    line["trials"] = everything if args.verbose else None
    return line


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--layer", choices=["memory", "core", "pubsub"], default=os.environ.get("BENCH_LAYER", "pubsub")
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200, help="burst size")
    parser.add_argument("--paced", type=int, default=20, help="messages at 1/s (0: skip)")
    parser.add_argument("--paced10", type=int, default=50, help="messages at 10/s (0: skip)")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--no-uvicorn", dest="uvicorn", action="store_false")
    parser.add_argument(
        "--no-peers", dest="peers", action="store_false", help="without Node Socket.IO and python-socketio"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternated rounds; the line has medians (default 1; --full: 3, for its target table)",
    )
    parser.add_argument(
        "--sources",
        action="store_true",
        help="each client process connects from its own 127.0.0.x (many sockets)",
    )
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds of silence that end a phase")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL"))
    parser.add_argument("--profile", help="record the floorchannels server with py-spy to this file")
    parser.add_argument("--profile-phase", choices=["connect", "burst", "paced1", "paced10"], default="burst")
    parser.add_argument("--output", help="write every trial's figures here (JSON)")
    parser.add_argument("--verbose", action="store_true", help="include every trial in the JSON line")
    parser.add_argument("--only", help="run only these trials, e.g. fc/daphne,limit/uvicorn")
    parser.add_argument("--concurrency", type=int, default=25, help="connects in flight per client process")
    parser.add_argument(
        "--protocol",
        type=int,
        choices=[1, 2],
        default=2,
        help="the floorchannels protocol its sockets ask for in their hello (1: the old frames, to compare)",
    )
    parser.add_argument("--full", action="store_true", help="sweep and write docs/benchmarks.md")
    parser.add_argument(
        "--sizes",
        default="100,1000,5000,10000,max",
        help="--full: the sweep's group sizes (max: as many sockets as the fd limit allows)",
    )
    parser.add_argument(
        "--doc", default=None, help="--full: the Markdown file to write (its charts beside it)"
    )
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.full else 1
    return args


async def amain(args: argparse.Namespace) -> dict:
    raise_fd_limit()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    redis = None
    redis_url = args.redis_url or ""
    if not redis_url and (args.layer != "memory" or args.full):
        redis = Redis()
        redis_url = redis.url
        await asyncio.sleep(0.3)
    try:
        if args.full:
            from bench.report import run_full

            return await run_full(args, redis_url, trial)
        return await run_quick(args, redis_url)
    finally:
        if redis is not None:
            redis.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    sys.path.insert(0, str(ROOT))
    line = asyncio.run(amain(args))
    print(
        json.dumps(
            {k: v for k, v in line.items() if v is not None or k.startswith(("fc_", "raw_", "limit_"))}
        )
    )


if __name__ == "__main__":
    main()
