"""Full mode (``make bench-full``): everything issue 16 asks for in one run, written to
docs/benchmarks.md between its two bench-full markers, with charts.

1. The target table: quick mode at ``--clients`` sockets for floorchannels under daphne,
   uvicorn and granian, Node.js Socket.IO, python-socketio, the limit app and raw Channels,
   over ``--rounds`` alternated rounds (medians), and floorchannels' ratios to Socket.IO
   against the issue's targets, each marked met or not.
2. A sweep over the number of sockets in the broadcast group (``--sizes``; ``max`` is as
   many as the fd limit allows). The burst shrinks as the group grows so a trial stays near
   200,000 deliveries (raw Channels, which delivers a few thousand a second, near 50,000),
   and the paced phase is 10 messages at 1/s. A trial whose duration, estimated from the same
   system's previous size, would pass ``TRIAL_LIMIT_S`` is skipped and listed; raw Channels
   stops at ``RAW_MAX``. The target table's trials stand for the sweep at ``--clients``.
3. Several processes (bench/processes.py) and Redis's CPU per call (bench/redis_cost.py).
4. When, where (load average before and after) and how long.

Every result goes to artifacts/bench-full.json as it comes; ``python -m bench.report
artifacts/bench-full.json`` writes the section again from it.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
ARTIFACT = ROOT / "artifacts" / "bench-full.json"
BEGIN, END = "<!-- bench-full:begin -->", "<!-- bench-full:end -->"
RAW_MAX = 5000
TRIAL_LIMIT_S = 180
SWEEP_PACED = 10

#: The target table's rows, in the order they run (reversed every other round).
TARGET_PLAN = [
    ("fc", "daphne"),
    ("fc", "uvicorn"),
    ("fc", "granian"),
    ("socketio", "node"),
    ("pysocketio", "uvicorn"),
    ("limit", "daphne"),
    ("hello", "uvicorn"),
    ("raw", "daphne"),
]
SWEEP_PLAN = [
    ("fc", "daphne"),
    ("fc", "uvicorn"),
    ("socketio", "node"),
    ("pysocketio", "uvicorn"),
    ("raw", "daphne"),
    ("limit", "daphne"),
]
NAMES = {
    "fc/daphne": "floorchannels, daphne",
    "fc/uvicorn": "floorchannels, uvicorn",
    "fc/granian": "floorchannels, granian",
    "socketio/node": "Node.js Socket.IO 4.8",
    "pysocketio/uvicorn": "python-socketio, uvicorn",
    "limit/daphne": "bare ASGI limit, daphne",
    "hello/uvicorn": "bare ASGI app with hello/welcome, uvicorn",
    "raw/daphne": "raw Channels, daphne",
}
#: Figures of a trial in the tables: (key, heading, True when higher is better).
FIGURES = [
    ("deliveries_per_s", "burst deliveries/s", True),
    ("p50_ms_paced", "paced 1/s p50 ms", False),
    ("p99_ms_paced", "paced 1/s p99 ms", False),
    ("p99_ms_paced10", "paced 10/s p99 ms", False),
    ("rss_per_conn_kib", "KiB per socket", False),
    ("connects_per_s", "connects/s", True),
    ("bytes_per_delivery", "bytes per delivery", False),
    ("envelope_bytes", "envelope bytes", False),
    ("lost", "lost", False),
]
#: The target table's columns: those, and how many signals a burst's messages carried.
TARGET_COLUMNS = [*FIGURES, ("deliveries_per_message", "signals per message (burst)", True)]
SWEEP_FIGURES = [
    ("deliveries_per_s", "burst deliveries/s"),
    ("p99_ms_paced", "paced 1/s p99 ms"),
    ("rss_per_conn_kib", "KiB per socket"),
    ("connects_per_s", "connects/s"),
]


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def row_of(trial: dict) -> dict:
    """A trial's figures for the tables (bench.run.figures) with what identifies it."""
    from bench.run import figures

    return {
        "system": trial["system"],
        "server": trial["server"],
        "clients": trial["clients"],
        "messages": trial["messages"],
        **figures(trial),
        "deliveries_per_message": trial.get("burst", {}).get("deliveries_per_message"),
        "connect_failed": trial.get("connect_failed"),
    }


def median_rows(rows: list[dict]) -> dict:
    """Each figure's median over rounds (None when no round had it)."""
    merged = dict(rows[0])
    for key, value in merged.items():
        values = [r.get(key) for r in rows if isinstance(r.get(key), (int, float))]
        if key not in ("clients", "messages") and values and not isinstance(value, str):
            middle = statistics.median(values)
            merged[key] = round(middle, 1) if isinstance(middle, float) else middle
    merged["rounds"] = len(rows)
    return merged


def target_rows(data: dict) -> dict[str, dict]:
    """``system/server`` → medians over the target table's rounds."""
    grouped: dict[str, list[dict]] = {}
    for trial in data.get("target", []):
        if "error" not in trial:
            grouped.setdefault(f"{trial['system']}/{trial['server']}", []).append(row_of(trial))
    return {key: median_rows(rows) for key, rows in grouped.items()}


def ratio(ours: object, theirs: object) -> float | None:
    if not isinstance(ours, (int, float)) or not isinstance(theirs, (int, float)) or not theirs:
        return None
    return round(ours / theirs, 2)


def targets(rows: dict[str, dict]) -> list[dict]:
    """The issue's targets, each with the ratio measured and whether it is met."""
    peer = rows.get("socketio/node", {})
    checks = []

    def check(name: str, server: str, key: str, goal: str, ok, ours_key: str = "") -> None:
        ours = rows.get(f"fc/{server}", {}).get(key)
        theirs = peer.get(key)
        value = ratio(ours, theirs)
        checks.append(
            {
                "target": name,
                "server": server,
                "ours": ours,
                "theirs": theirs,
                "ratio": value,
                "goal": goal,
                "met": None if value is None else bool(ok(value)),
            }
        )

    for server in ("daphne", "uvicorn"):
        check("burst deliveries/s", server, "deliveries_per_s", "≥ 1.2×", lambda r: r >= 1.2)
    for key, name in (("p99_ms_paced", "paced 1/s p99"), ("p99_ms_paced10", "paced 10/s p99")):
        check(name, "uvicorn", key, "≤ 1×", lambda r: r <= 1.0)
        check(name, "daphne", key, "≤ 1.5×", lambda r: r <= 1.5)
    for server in ("daphne", "uvicorn"):
        check("KiB per socket", server, "rss_per_conn_kib", "≤ 1×", lambda r: r <= 1.0)
    check("connects/s", "uvicorn", "connects_per_s", "≥ 1×", lambda r: r >= 1.0)
    for server in ("daphne", "uvicorn"):
        envelope = rows.get(f"fc/{server}", {}).get("envelope_bytes")
        checks.append(
            {
                "target": "envelope bytes",
                "server": server,
                "ours": envelope,
                "theirs": peer.get("envelope_bytes"),
                "ratio": ratio(envelope, peer.get("envelope_bytes")),
                "goal": "≤ 40 bytes",
                "met": None if envelope is None else envelope <= 40,
            }
        )
    granian, uvicorn = rows.get("fc/granian", {}), rows.get("fc/uvicorn", {})
    for key, heading, higher in FIGURES[:6]:
        value = ratio(granian.get(key), uvicorn.get(key))
        checks.append(
            {
                "target": f"granian ÷ uvicorn: {heading}",
                "server": "granian",
                "ours": granian.get(key),
                "theirs": uvicorn.get(key),
                "ratio": value,
                "goal": "≥ 0.67×" if higher else "≤ 1.5×",
                "met": None if value is None else (value >= 1 / 1.5 if higher else value <= 1.5),
            }
        )
    return checks


def cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, int) or (isinstance(value, float) and value >= 1000):
        return f"{value:,.0f}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def target_table(rows: dict[str, dict]) -> str:
    lines = [
        "| system | " + " | ".join(heading for _, heading, _ in TARGET_COLUMNS) + " |",
        "|---|" + "---:|" * len(TARGET_COLUMNS),
    ]
    for key, name in NAMES.items():
        if key in rows:
            values = [cell(rows[key].get(k)) for k, _, _ in TARGET_COLUMNS]
            lines.append(f"| {name} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def targets_table(checks: list[dict]) -> str:
    lines = [
        "| target | server | floorchannels | Socket.IO (granian rows: uvicorn) | ratio | goal | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for c in checks:
        lines.append(
            f"| {c['target']} | {c['server']} | {cell(c['ours'])} | {cell(c['theirs'])} "
            f"| {cell(c['ratio'])} | {c['goal']} | {cell(c['met'])} |"
        )
    return "\n".join(lines)


def peers_table(rows: dict[str, dict]) -> str:
    """floorchannels ÷ each peer, per server and column."""
    columns = FIGURES[:8]
    lines = [
        "| floorchannels ÷ | " + " | ".join(heading for _, heading, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for server in ("daphne", "uvicorn", "granian"):
        ours = rows.get(f"fc/{server}")
        if not ours:
            continue
        for peer, name in (("socketio/node", "Socket.IO"), ("pysocketio/uvicorn", "python-socketio")):
            if peer in rows:
                values = [cell(ratio(ours.get(k), rows[peer].get(k))) for k, _, _ in columns]
                lines.append(f"| {server} ÷ {name} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def sweep_points(data: dict) -> dict[str, dict[int, dict]]:
    """``system/server`` → size → row, the target table's medians standing at its size."""
    points: dict[str, dict[int, dict]] = {}
    for trial in data.get("sweep", []):
        if "error" not in trial:
            row = row_of(trial)
            points.setdefault(f"{row['system']}/{row['server']}", {})[row["clients"]] = row
    for key, row in target_rows(data).items():
        if key in {f"{s}/{v}" for s, v in SWEEP_PLAN}:
            points.setdefault(key, {})[row["clients"]] = row
    return points


def sweep_tables(data: dict) -> str:
    points = sweep_points(data)
    systems = [f"{s}/{v}" for s, v in SWEEP_PLAN if f"{s}/{v}" in points]
    sizes = sorted(
        {size for key in systems for size in points[key]} | {s["clients"] for s in data.get("skipped", [])}
    )
    skipped = {(s["system"], s["clients"]): s for s in data.get("skipped", [])}
    out = []
    for key, heading in SWEEP_FIGURES:
        lines = [
            f"**{heading}**",
            "",
            "| sockets | " + " | ".join(NAMES[s] for s in systems) + " |",
            "|---:|" + "---:|" * len(systems),
        ]
        for size in sizes:
            values = []
            for system in systems:
                row = points[system].get(size)
                if row is not None:
                    values.append(cell(row.get(key)) + (" (lost)" if row.get("lost") else ""))
                else:
                    values.append("skipped" if (system, size) in skipped else "—")
            lines.append(f"| {size:,} | " + " | ".join(values) + " |")
        out.append("\n".join(lines))
    bursts = ", ".join(
        f"{size:,}: {row['messages']}" for size, row in sorted(points.get("fc/daphne", {}).items())
    )
    out.append(f"Burst sizes (messages; sockets: burst): {bursts}." if bursts else "")
    if data.get("skipped"):
        out.append(
            "Skipped: "
            + "; ".join(f"{NAMES[s['system']]} at {s['clients']:,} ({s['why']})" for s in data["skipped"])
            + "."
        )
    return "\n\n".join(part for part in out if part)


def processes_table(result: dict | None) -> str:
    if not result or "error" in result:
        return f"(failed: {result['error']})" if result else "(not run)"
    lines = [
        "| processes | burst deliveries/s | server CPU µs/delivery | Redis CPU µs/publish | lost |",
        "|---:|---:|---:|---:|---:|",
    ]
    for key, figures in result.items():
        if key.startswith("procs_"):
            lines.append(
                f"| {key[6:]} | {cell(figures['deliveries_per_s'])} | {cell(figures['server_cpu_us_per_delivery'])} "
                f"| {cell(figures['redis_cpu_us_per_publish'])} | {cell(figures['lost'])} |"
            )
    return "\n".join(lines)


def redis_table(result: dict | None) -> str:
    if not result or "error" in result:
        return f"(failed: {result['error']})" if result else "(not run)"
    lines = ["| call | Redis CPU µs per call |", "|---|---:|"]
    lines += [f"| {name} | {cell(value)} |" for name, value in result["redis_cpu_us_per_call"].items()]
    return "\n".join(lines)


def charts(data: dict, directory: Path) -> list[str]:
    """The sweep's four figures against sockets, and the ratios to Socket.IO (PNG files in
    ``directory``; none when matplotlib is missing). Returns the files' names."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    points = sweep_points(data)
    if points:
        figure, axes = plt.subplots(2, 2, figsize=(11, 7.5))
        for axis, (key, heading) in zip(axes.flat, SWEEP_FIGURES, strict=True):
            for system, _ in NAMES.items():
                series = sorted(
                    (size, row[key])
                    for size, row in points.get(system, {}).items()
                    if row.get(key) is not None
                )
                if series:
                    axis.plot(*zip(*series, strict=True), marker="o", label=NAMES[system])
            axis.set_xscale("log")
            if key in ("deliveries_per_s", "p99_ms_paced"):
                axis.set_yscale("log")
            axis.set_xlabel("sockets in the broadcast group")
            axis.set_title(heading)
            axis.grid(alpha=0.3)
        axes.flat[0].legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(directory / "benchmarks.png", dpi=80)
        plt.close(figure)
        made.append("benchmarks.png")
    rows = target_rows(data)
    peer = rows.get("socketio/node")
    if peer:
        columns = FIGURES[:6]
        figure, axis = plt.subplots(figsize=(10, 4))
        servers = [s for s in ("daphne", "uvicorn", "granian") if f"fc/{s}" in rows]
        width = 0.8 / max(1, len(servers))
        for i, server in enumerate(servers):
            values = [ratio(rows[f"fc/{server}"].get(k), peer.get(k)) or 0 for k, _, _ in columns]
            axis.bar(
                [j + i * width for j in range(len(columns))], values, width, label=f"floorchannels, {server}"
            )
        axis.axhline(1.0, color="black", linewidth=0.8)
        axis.set_xticks([j + width * (len(servers) - 1) / 2 for j in range(len(columns))])
        axis.set_xticklabels(
            [f"{h}\n({'higher' if up else 'lower'} is better)" for _, h, up in columns], fontsize=8
        )
        axis.set_ylabel("floorchannels ÷ Node.js Socket.IO (1: level)")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3, axis="y")
        figure.tight_layout()
        figure.savefig(directory / "benchmarks-target.png", dpi=80)
        plt.close(figure)
        made.append("benchmarks-target.png")
    return made


def render(data: dict, chart_files: list[str]) -> str:
    meta = data.get("meta", {})
    rows = target_rows(data)
    checks = targets(rows)
    met = [c for c in checks if c["met"] is not None]
    loops = meta.get("loops", {})
    parts = [
        BEGIN,
        f"Generated by `make bench-full` ({meta.get('command', 'python -m bench.run --full')}) on "
        f"{meta.get('started', '?')} UTC, {meta.get('host', '?')}: load average (1/5/15 min) "
        f"{meta.get('load_before', '?')} before, {meta.get('load_after', '?')} after; the run took "
        f"{meta.get('minutes', '?')} minutes. {meta.get('layer', 'pubsub')} layer on one redis-server; "
        "one server process per trial; the client processes, Redis and the publisher share the "
        "machine's cores with the server. Event loops: uvicorn "
        f"{loops.get('uvicorn', '?')} (`--loop auto`), daphne {loops.get('daphne', '?')}, granian "
        f"{loops.get('granian', '?')}. Versions: {meta.get('versions', '?')}."
        + (f" {meta['note']}" if meta.get("note") else ""),
        "",
        f"### Targets: {meta.get('clients', '?'):,} sockets, medians of {meta.get('rounds', '?')} alternated rounds"
        if isinstance(meta.get("clients"), int)
        else "### Targets",
        "",
        f"A burst of {meta.get('messages', '?')} messages, then {meta.get('paced', '?')} at 1/s and "
        f"{meta.get('paced10', '?')} at 10/s. Bytes per delivery: the payload of the messages per "
        "delivery (a batch's bytes shared by its signals); envelope bytes: a message carrying one "
        "signal less the signal's kwargs as compact JSON. A delivery is one signal reaching one "
        "socket: floorchannels' sockets (protocol 2) get the signals queued for them in batches, "
        "one websocket message each (signals per message), the peers one message per signal.",
        "",
        target_table(rows),
        "",
        f"Met {sum(c['met'] for c in met)} of {len(met)}:",
        "",
        targets_table(checks),
        "",
        "Ratios to each peer (above 1 is better for deliveries/s and connects/s, below 1 for the rest):",
        "",
        peers_table(rows),
        "",
    ]
    if "benchmarks-target.png" in chart_files:
        parts += ["![floorchannels ÷ Node.js Socket.IO](benchmarks-target.png)", ""]
    parts += [
        "### Sweep over the sockets in the broadcast group",
        "",
        f"One round per size (the {cell(meta.get('clients'))} row: the target table's medians). "
        "The burst shrinks as the group grows (about 200,000 deliveries a trial; raw Channels 50,000). "
        f"Paced: {meta.get('sweep_paced', SWEEP_PACED)} messages at 1/s. Sizes above 5,000 sockets connect from several "
        "loopback addresses (`--sources`).",
        "",
        sweep_tables(data),
        "",
    ]
    if "benchmarks.png" in chart_files:
        parts += ["![the sweep's figures against sockets](benchmarks.png)", ""]
    elif not chart_files:
        parts += ["(matplotlib missing: no charts)", ""]
    processes = data.get("processes") or {}
    parts += [
        "### Several processes on one Redis (bench/processes.py)",
        "",
        f"{processes.get('server', 'uvicorn')}, {cell(processes.get('clients'))} sockets spread over the "
        f"processes, a burst of {processes.get('messages', '?')}, medians of {processes.get('rounds', '?')} "
        "alternated rounds.",
        "",
        processes_table(processes),
        "",
        "### Redis's CPU per call (bench/redis_cost.py)",
        "",
        redis_table(data.get("redis_cost")),
        END,
    ]
    return "\n".join(parts)


def write_doc(data: dict, doc: Path = DOC) -> str:
    """Replace the part of ``doc`` between the markers; the charts go next to it."""
    section = render(data, charts(data, doc.parent))
    text = doc.read_text() if doc.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    doc.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S))
    return section


def save(data: dict, path: Path = ARTIFACT) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def sizes(spec: str) -> list[int]:
    """``--sizes``; ``max`` is as many sockets as the fd limit allows, less some headroom."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return [(hard // 1000 - 1) * 1000 if part == "max" else int(part) for part in spec.split(",")]


def estimate(row: dict, size: int, messages: int, paced: int) -> float:
    """Seconds a trial at ``size`` would take, from the same system's figures at another size."""
    connects = row.get("connects_per_s") or 100
    deliveries = row.get("deliveries_per_s") or 1000
    return size / connects + size * messages / deliveries + paced + 10


def versions() -> str:
    import importlib.metadata as metadata

    found = [f"Python {platform.python_version()}"]
    for name in ("django", "channels", "daphne", "uvicorn", "granian", "python-socketio"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    try:
        node = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        found.append(f"Node.js {node}")
        package = ROOT / "bench" / "node" / "node_modules" / "socket.io" / "package.json"
        found.append(f"socket.io {json.loads(package.read_text())['version']}")
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError):
        pass
    return ", ".join(found)


def host() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.machine(),
    )  # fmt: skip
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({model}), {memory:.0f} GiB"


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


async def guarded(what: str, coroutine) -> dict:
    """A trial that fails is reported as failed; the run goes on."""
    try:
        return await coroutine
    except Exception as error:  # noqa: BLE001 - one trial's failure must not lose the run
        log(f"{what} failed: {error!r}")
        return {"error": repr(error)}


async def run_full(args: argparse.Namespace, redis_url: str, trial) -> dict:
    from bench import processes, redis_cost
    from bench.run import loops

    started = time.time()
    data: dict = {
        "meta": {
            "started": datetime.datetime.fromtimestamp(started, datetime.UTC).strftime("%Y-%m-%d %H:%M"),
            "command": "python -m bench.run " + " ".join(sys.argv[1:]),
            "host": host(),
            "load_before": load(),
            "layer": args.layer,
            "clients": args.clients,
            "messages": args.messages,
            "paced": args.paced,
            "paced10": args.paced10,
            "rounds": args.rounds,
            "loops": loops(),
            "versions": versions(),
        },
        "target": [],
        "sweep": [],
        "skipped": [],
    }
    # 1. The target table, alternated rounds.
    for number in range(args.rounds):
        for system, server in TARGET_PLAN if number % 2 == 0 else TARGET_PLAN[::-1]:
            log(f"target: {system}/{server}, {args.clients} sockets, round {number + 1}/{args.rounds}")
            result = await guarded(f"{system}/{server}", trial(system, server, args.layer, args, redis_url))
            data["target"].append({"system": system, "server": server, "clients": args.clients, **result})
            save(data)
    # 2. The sweep, the target table's size excepted.
    paced = data["meta"]["sweep_paced"] = min(args.paced, SWEEP_PACED)
    measured = {f"{s}/{v}": row for s, v in SWEEP_PLAN if (row := target_rows(data).get(f"{s}/{v}"))}
    for size in sorted(sizes(args.sizes)):
        if size == args.clients:
            continue
        for system, server in SWEEP_PLAN:
            key = f"{system}/{server}"
            messages = (
                max(10, min(200, 50_000 // size)) if system == "raw" else max(20, min(200, 200_000 // size))
            )
            why = None
            if system == "raw" and size > RAW_MAX:
                why = f"raw Channels only up to {RAW_MAX:,} sockets"
            elif (
                key in measured
                and (seconds := estimate(measured[key], size, messages, paced)) > TRIAL_LIMIT_S
            ):
                why = f"about {seconds:.0f} s estimated"
            if why:
                log(f"sweep: {key} at {size} skipped: {why}")
                data["skipped"].append({"system": key, "clients": size, "why": why})
                continue
            sub = copy.copy(args)
            sub.clients, sub.messages = size, messages
            sub.paced, sub.paced10 = paced, 0
            sub.client_procs = 1 if size <= 100 else 2 if size <= 5000 else 4
            sub.sources = size > 5000
            log(f"sweep: {key}, {size} sockets, burst of {messages}")
            result = await guarded(key, trial(system, server, args.layer, sub, redis_url))
            data["sweep"].append({"system": system, "server": server, "clients": size, **result})
            if "error" not in result and size > measured.get(key, {}).get("clients", 0):
                measured[key] = row_of(result)  # the estimate scales from the largest size
            save(data)
    # 3. Several processes, and Redis's cost per call.
    log("processes: 1 and 2 uvicorn processes on one Redis")
    data["processes"] = await guarded(
        "processes",
        processes.amain(
            argparse.Namespace(
                procs="1,2", server="uvicorn", clients=args.clients, messages=200, rounds=2,
                quiet=args.quiet, timeout=args.timeout, protocol=args.protocol,
            )
        ),
    )  # fmt: skip
    log("redis_cost")
    data["redis_cost"] = await guarded("redis_cost", redis_cost.amain(5000))
    finished = time.time()
    data["meta"]["load_after"] = load()
    data["meta"]["minutes"] = round((finished - started) / 60, 1)
    save(data)
    doc = Path(args.doc) if args.doc else DOC
    write_doc(data, doc)
    met = [c["met"] for c in targets(target_rows(data)) if c["met"] is not None]
    failed = sum("error" in t for t in data["target"] + data["sweep"])
    return {"full": True, "layer": args.layer, "minutes": data["meta"]["minutes"], "doc": str(doc),
            "targets_met": f"{sum(met)} of {len(met)}", "failed_trials": failed}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", nargs="?", default=str(ARTIFACT), help="a bench-full JSON (artifacts/)")
    parser.add_argument("--doc", default=str(DOC))
    args = parser.parse_args(argv)
    write_doc(json.loads(Path(args.data).read_text()), Path(args.doc))


if __name__ == "__main__":
    main()
