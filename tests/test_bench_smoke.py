"""The benchmark harness runs end to end on tiny numbers (no speed is asserted).

It runs the peers too: Node.js Socket.IO (bench/node, ``npm ci`` there when its packages are
missing) and python-socketio (the ``bench`` dependencies). floorchannels' sockets speak
protocol 2 by default; ``--protocol 1`` keeps the old frames for comparison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.client import json_size, signals

ROOT = Path(__file__).resolve().parent.parent
KEYS = {
    "clients", "messages", "layer", "protocol", "fc_deliveries_per_s", "raw_deliveries_per_s", "ratio",
    "fc_lost", "raw_lost", "fc_p99_ms_paced", "raw_p99_ms_paced", "fc_rss_per_conn_kib",
    "raw_rss_per_conn_kib", "fc_connects_per_s", "limit_deliveries_per_s", "limit_p99_ms_paced",
    "limit_rss_per_conn_kib", "fc_bytes_per_delivery", "fc_bytes_per_lone_frame", "fc_envelope_bytes",
    "fc_deliveries_per_message", "fc_p50_ms_paced",
}  # fmt: skip
PEER_COLUMNS = {
    "deliveries_per_s", "p50_ms_paced", "p99_ms_paced", "p99_ms_paced10", "rss_per_conn_kib",
    "connects_per_s", "bytes_per_delivery", "bytes_per_lone_frame", "envelope_bytes",
}  # fmt: skip
TINY = ["--layer", "memory", "--clients", "20", "--messages", "10", "--paced", "2", "--paced10", "5",
        "--client-procs", "1", "--no-uvicorn", "--quiet", "3"]  # fmt: skip


def bench(*extra: str, uvicorn: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    tiny = [arg for arg in TINY if arg != "--no-uvicorn"] if uvicorn else TINY
    command = [sys.executable, "-m", "bench.run", *tiny, *extra]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=190)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_client_reads_every_shape_of_message():
    """v1 signal objects, v2 compact signals and batches, bare payloads, Socket.IO events."""
    a, b = {"s": 1, "t": 2.5}, {"s": 2, "t": 3.5}
    v1 = {"type": "signal", "signal": "m", "kwargs": a, "id": "0" * 32, "g": "g", "seq": "1-0", "e": "e"}
    cases = {
        json.dumps(v1): [a],
        json.dumps({"type": "pong"}): [],
        json.dumps({"type": "event", "kwargs": b}): [],
        json.dumps(["m", a]): [a],
        json.dumps(["m", a, "g", 7, None, {"h": 3}]): [a],
        json.dumps([["m", a, "g", 7], {"type": "topic"}, ["m", b, "g", 8, "e2"]]): [a, b],
        json.dumps([v1, ["m", b]]): [a, b],
        json.dumps(a): [a],  # raw Channels and the limit app send the payload bare
    }
    for payload, expected in cases.items():
        assert signals(payload.encode()) == expected, payload
    assert signals(b'42["m",{"s":1,"t":2.5}]', socketio=True) == [a]
    assert signals(b"3", socketio=True) == []
    assert json_size(a) == len('{"s":1,"t":2.5}')


@pytest.mark.e2e
@pytest.mark.timeout(200)
def test_quick_mode_on_tiny_numbers():
    line = bench()
    assert KEYS <= line.keys(), KEYS - line.keys()
    assert line["clients"] == 20 and line["messages"] == 10 and line["layer"] == "memory"
    assert line["protocol"] == 2
    assert line["fc_lost"] == 0 and line["raw_lost"] == 0 and line["limit_lost"] == 0
    assert line["fc_duplicated"] == 0
    assert line["fc_deliveries_per_s"] > 0 and line["fc_p99_ms_paced"] is not None
    # The peers ran in the same run, lost nothing, and every column has its ratio.
    for peer in ("socketio", "pysocketio"):
        assert line[f"{peer}_lost"] == 0, peer
        assert all(line[f"{peer}_{column}"] is not None for column in PEER_COLUMNS), peer
        assert line[f"vs_{peer}"]["daphne"].keys() == PEER_COLUMNS
        assert all(value > 0 for value in line[f"vs_{peer}"]["daphne"].values()), line[f"vs_{peer}"]
    # A signal carries floorchannels' envelope around the payload that the peers send nearly bare;
    # protocol 2 keeps it within 40 bytes (docs/protocol.md).
    assert 0 < line["socketio_envelope_bytes"] < line["fc_envelope_bytes"] <= 40
    assert line["fc_bytes_per_lone_frame"] > line["socketio_bytes_per_lone_frame"]
    assert line["fc_bytes_per_delivery"] > line["socketio_bytes_per_delivery"] > 0
    assert line["fc_deliveries_per_message"] >= 1


@pytest.mark.e2e
@pytest.mark.timeout(200)
def test_protocol_1_for_comparison():
    """``--protocol 1`` reaches the client processes: the welcome says 1 (the client checks
    it), and the lone signal frame is the old object with its id and positions."""
    trial = bench("--protocol", "1", "--only", "fc/daphne")["trials"][0]
    assert trial["protocol"] == 1 and trial["connect_failed"] == 0
    assert trial["burst"]["lost"] == 0 and trial["burst"]["duplicated"] == 0
    assert trial["paced"]["deliveries_per_message"] == 1
    assert trial["paced"]["envelope_bytes"] > 100


@pytest.mark.e2e
@pytest.mark.timeout(200)
def test_the_hello_floor_says_hello_and_welcome():
    """The ``hello`` system is the bare app with floorchannels' hello/welcome exchange: its
    clients send a real window key and wait for a welcome of floorchannels' size, which
    answers the protocol they asked for (the client checks it); ``limit`` only opens."""
    trials = bench("--only", "hello/uvicorn,limit/uvicorn", uvicorn=True)["trials"]
    by_system = {trial["system"]: trial for trial in trials}
    assert by_system.keys() == {"hello", "limit"}
    for trial in trials:
        assert trial["server"] == "uvicorn" and trial["connect_failed"] == 0, trial
        assert trial["connects_per_s"] > 0
        assert trial["burst"]["lost"] == 0 and trial["paced"]["lost"] == 0


def canned_trial(system: str, server: str, clients: int, deliveries: float, p99: float, kib: float) -> dict:
    """A trial as bench.run.trial returns it, with made-up figures."""
    lone = {"bytes_per_lone_frame": 60.0, "envelope_bytes": 36.0 if system == "fc" else 12.0}
    return {
        "system": system, "server": server, "layer": "pubsub", "clients": clients, "messages": 200,
        "connect_failed": 0, "rss_per_conn_kib": kib, "connects_per_s": 1000,
        "burst": {"deliveries_per_s": deliveries, "lost": 0, "bytes_per_delivery": 30.0, **lone,
                  "deliveries_per_message": 4.0 if system == "fc" else 1.0},
        "paced": {"p50_ms": p99 / 4, "p99_ms": p99, **lone},
        "paced10": {"p99_ms": p99 * 2, **lone},
    }  # fmt: skip


def test_the_full_report_from_canned_rows(tmp_path):
    """bench/report.py writes the target table with each target met or not, the sweep's tables
    (skipped sizes named), the processes and Redis tables and the charts, between the markers
    only; no server runs."""
    from bench import report

    target = []
    for number in range(3):  # medians of three rounds: the middle one is 1.5x Socket.IO's burst
        scale = (1.0, 1.5, 2.0)[number]
        target += [
            canned_trial("fc", "daphne", 1000, 90_000 * scale, 60.0, 16.0),
            canned_trial("fc", "uvicorn", 1000, 50_000 * scale, 30.0, 20.0),
            canned_trial("fc", "granian", 1000, 50_000 * scale, 30.0, 21.0),
            canned_trial("socketio", "node", 1000, 60_000 * scale, 40.0, 17.0),
            canned_trial("pysocketio", "uvicorn", 1000, 10_000, 300.0, 40.0),
            canned_trial("limit", "daphne", 1000, 70_000, 50.0, 12.0),
            canned_trial("raw", "daphne", 1000, 2_000, 600.0, 30.0),
        ]
    sweep = [
        canned_trial("fc", "daphne", 5000, 80_000, 70.0, 16.5),
        canned_trial("raw", "daphne", 100, 3_000, 500.0, 31),
    ]
    data = {
        "meta": {"started": "2026-11-30 21:15", "clients": 1000, "rounds": 3, "loops": {"uvicorn": "uvloop 0.23.0"},
                 "load_before": "0.50 / 0.40 / 0.30", "load_after": "1.00 / 0.90 / 0.80", "minutes": 30.5},
        "target": [*target, {"system": "fc", "server": "daphne", "clients": 1000, "error": "RuntimeError()"}],
        "sweep": sweep,
        "skipped": [{"system": "raw/daphne", "clients": 10000, "why": "raw Channels only up to 5,000 sockets"}],
        "processes": {"server": "uvicorn", "clients": 1000, "messages": 200, "rounds": 2,
                      "procs_1": {"deliveries_per_s": 80_000, "server_cpu_us_per_delivery": 12.0,
                                  "redis_cpu_us_per_publish": 30.0, "lost": 0},
                      "procs_2": {"deliveries_per_s": 120_000, "server_cpu_us_per_delivery": 14.0,
                                  "redis_cpu_us_per_publish": 40.0, "lost": 0}},
        "redis_cost": {"calls": 10, "redis_cpu_us_per_call": {"PUBLISH to 1 subscriber(s)": 4.5}},
    }  # fmt: skip
    rows = tmp_path / "bench-full.json"
    rows.write_text(json.dumps(data))
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\nThe lead's text.\n\n{report.BEGIN}\nold\n{report.END}\n\nMore text.\n")

    report.main([str(rows), "--doc", str(doc)])

    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nThe lead's text.\n\n") and text.endswith(
        f"{report.END}\n\nMore text.\n"
    )
    assert "\nold\n" not in text
    assert "uvloop 0.23.0" in text and "0.50 / 0.40 / 0.30 before, 1.00 / 0.90 / 0.80 after" in text
    lines = text.splitlines()
    # The target table: medians over the rounds (the failed trial left out).
    assert "| floorchannels, daphne | 135,000 | 15 | 60 | 120 | 16 | 1,000 | 30 | 36 | 0 | 4 |" in lines
    assert any(line.startswith("| Node.js Socket.IO 4.8 | 90,000 |") for line in lines)
    # The targets, each with its ratio and whether it is met.
    assert (
        "| target | server | floorchannels | Socket.IO (granian rows: uvicorn) | ratio | goal | met |"
        in lines
    )
    assert "| burst deliveries/s | daphne | 135,000 | 90,000 | 1.5 | ≥ 1.2× | yes |" in lines
    assert "| burst deliveries/s | uvicorn | 75,000 | 90,000 | 0.83 | ≥ 1.2× | **no** |" in lines
    assert "| paced 1/s p99 | daphne | 60 | 40 | 1.5 | ≤ 1.5× | yes |" in lines
    assert "| KiB per socket | uvicorn | 20 | 17 | 1.18 | ≤ 1× | **no** |" in lines
    assert "| envelope bytes | daphne | 36 | 12 | 3 | ≤ 40 bytes | yes |" in lines
    assert "| granian ÷ uvicorn: KiB per socket | granian | 21 | 20 | 1.05 | ≤ 1.5× | yes |" in lines
    assert "Met 15 of 17:" in lines
    assert any(line.startswith("| uvicorn ÷ python-socketio | 7.5 |") for line in lines)
    # The sweep: the target table's medians stand at 1,000 sockets; the skipped size is named.
    assert "| 5,000 | 80,000 | — | — | — | — | — |" in lines
    assert "| 1,000 | 135,000 | 75,000 | 90,000 | 10,000 | 2,000 | 70,000 |" in lines
    assert "| 10,000 | — | — | — | — | skipped | — |" in lines
    assert "raw Channels, daphne at 10,000 (raw Channels only up to 5,000 sockets)" in text
    assert "| 2 | 120,000 | 14 | 40 | 0 |" in lines
    assert "| PUBLISH to 1 subscriber(s) | 4.5 |" in lines
    for chart in ("benchmarks.png", "benchmarks-target.png"):
        assert (tmp_path / chart).stat().st_size > 1000 and f"]({chart})" in text
