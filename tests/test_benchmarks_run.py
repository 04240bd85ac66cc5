"""The benchmarks that call the trainer's or the worker's functions directly, run at their
smallest: a change to those functions breaks them here, in the suite, not in the next measurement.
Two had stopped running unnoticed when trials became coroutines of their epochs:
benchmarks/fused_speed.py (train_fused_epoch's `epoch` became each trial's own `epochs`) and
benchmarks/storage_overhead.py (its stand-in objective had no `steps()`, which the worker's slots
drive). The other benchmarks ran at their smallest on 2026-12-06 and are left out, for time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers import ROOT


def run_benchmark(module: str, *arguments: str) -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", f"benchmarks.{module}", *arguments]
    subprocess.run(command, cwd=ROOT, env=environment, check=True, timeout=300)


def test_the_fused_speed_benchmark_trains_alone_and_fused(tmp_path):
    figures = tmp_path / "fused.json"
    run_benchmark(
        "fused_speed", "--device", "cpu", "--image-size", "32", "--batch-size", "4",
        "--trials", "2", "--steps", "1", "--warmup", "1", "--repeats", "1", "--threads", "1",
        "--json", str(figures),
    )  # fmt: skip
    arms = json.loads(figures.read_text())["arms"]
    assert {name: arm["trials"] for name, arm in arms.items()} == {"alone": 1, "fused K=2": 2}
    assert all(arm["images_per_second"] > 0 for arm in arms.values())


def test_the_storage_benchmark_runs_the_real_worker_loop(tmp_path):
    rows = tmp_path / "rows.json"
    run_benchmark(
        # at its default --prefill 0, which had broken (an insert of no rows)
        "storage_overhead", "--workers", "1", "--trials-per-worker", "2",
        "--train-seconds", "0.05", "--json", str(rows),
    )  # fmt: skip
    [row] = json.loads(rows.read_text())["rows"]
    assert (row["backend"], row["trials"]) == ("sqlite", 2)
    assert row["storage_calls_per_trial"] > 0 and row["wall_ms_per_trial"] > 0
