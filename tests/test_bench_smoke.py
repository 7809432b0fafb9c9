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


def bench(*extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, "-m", "bench.run", *TINY, *extra]
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
