"""The benchmark harness runs end to end on tiny numbers (no speed is asserted).

It runs the peers too: Node.js Socket.IO (bench/node, ``npm ci`` there when its packages are
missing) and python-socketio (the ``bench`` dependencies).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEYS = {
    "clients", "messages", "layer", "fc_deliveries_per_s", "raw_deliveries_per_s", "ratio",
    "fc_lost", "raw_lost", "fc_p99_ms_paced", "raw_p99_ms_paced", "fc_rss_per_conn_kib",
    "raw_rss_per_conn_kib", "fc_connects_per_s", "limit_deliveries_per_s", "limit_p99_ms_paced",
    "limit_rss_per_conn_kib", "fc_bytes_per_frame", "fc_p50_ms_paced",
}  # fmt: skip
PEER_COLUMNS = {
    "deliveries_per_s", "p50_ms_paced", "p99_ms_paced", "p99_ms_paced10", "rss_per_conn_kib",
    "connects_per_s", "bytes_per_frame",
}  # fmt: skip


@pytest.mark.e2e
@pytest.mark.timeout(200)
def test_quick_mode_on_tiny_numbers():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, "-m", "bench.run", "--layer", "memory", "--clients", "20", "--messages", "10",
               "--paced", "2", "--paced10", "5", "--client-procs", "1", "--no-uvicorn", "--quiet", "3"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=190)
    assert done.returncode == 0, done.stderr[-3000:]
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert KEYS <= line.keys(), KEYS - line.keys()
    assert line["clients"] == 20 and line["messages"] == 10 and line["layer"] == "memory"
    assert line["fc_lost"] == 0 and line["raw_lost"] == 0 and line["limit_lost"] == 0
    assert line["fc_duplicated"] == 0
    assert line["fc_deliveries_per_s"] > 0 and line["fc_p99_ms_paced"] is not None
    # The peers ran in the same run, lost nothing, and every column has its ratio.
    for peer in ("socketio", "pysocketio"):
        assert line[f"{peer}_lost"] == 0, peer
        assert all(line[f"{peer}_{column}"] is not None for column in PEER_COLUMNS), peer
        assert line[f"vs_{peer}"]["daphne"].keys() == PEER_COLUMNS
        assert all(value > 0 for value in line[f"vs_{peer}"]["daphne"].values()), line[f"vs_{peer}"]
    # A signal frame carries floorchannels' envelope around the payload that the peers send bare.
    assert line["fc_bytes_per_frame"] > line["socketio_bytes_per_frame"] > 0
