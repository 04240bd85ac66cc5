"""The benchmarks that call the trainer's functions directly, run at their smallest: a change to
those functions' signatures breaks them here, in the suite, not in the next measurement
(benchmarks/fused_speed.py stopped running unnoticed when train_fused_epoch's `epoch` became each
trial's own `epochs`)."""

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
