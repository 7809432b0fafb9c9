"""bench/soak.py runs end to end on tiny cycles (no plateau is asserted: too few cycles)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
@pytest.mark.timeout(150)
def test_soak_on_tiny_cycles():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, "-m", "bench.soak", "--cycles", "3", "--sockets", "20", "--layer", "pubsub"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=140)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["cycles"] == 3 and result["sockets"] == 20 and result["failed"] == 0
    assert set(result) >= {"rss_last_mib", "heap_bytes_per_churn", "redis_after_last", "plateau"}
    # The server's Redis connections stay within its pools however the cycles went.
    assert result["redis_peak"] <= 2 + 16
    cycles = [line for line in done.stderr.splitlines() if line.startswith("cycle")]
    assert len(cycles) == 3 and all("20 connected (0 failed)" in line for line in cycles)
