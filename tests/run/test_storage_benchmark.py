"""benchmarks/storage_overhead.py drives the real worker loop with a stand-in objective: run at its
smallest here, so that a change to what the worker asks of an objective breaks it in the suite,
not in the next measurement (it stopped running unnoticed once trials became coroutines of their
epochs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers import ROOT


def test_the_storage_benchmark_runs_the_real_worker_loop(tmp_path):
    rows = tmp_path / "rows.json"
    command = [sys.executable, "-m", "benchmarks.storage_overhead", "--workers", "1"]
    command += ["--prefill", "5", "--trials-per-worker", "2", "--train-seconds", "0.05"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [*command, "--json", str(rows)], cwd=ROOT, env=environment, check=True, timeout=300
    )
    [row] = json.loads(rows.read_text())["rows"]
    assert (row["backend"], row["trials"]) == ("sqlite", 2)
    assert row["storage_calls_per_trial"] > 0 and row["wall_ms_per_trial"] > 0
