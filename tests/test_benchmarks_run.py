"""The benchmarks that call the trainer's or the worker's functions directly, run at their
smallest: a change to those functions breaks them here, in the suite, not in the next measurement.
Two had stopped running unnoticed when trials became coroutines of their epochs:
benchmarks/fused_speed.py (train_fused_epoch's `epoch` became each trial's own `epochs`) and
benchmarks/storage_overhead.py (its stand-in objective had no `steps()`, which the worker's slots
drive); storage_overhead.py again when the objective's report_epoch came to take the `last` epoch.
The other benchmarks ran at their smallest on 2026-12-06 and are left out, for time. The GPU check's
summary is read here from a study like its own, asha's paused trials and continuations in it."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from benchmarks import gpu_check
from search import attrs
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


# Every trial alike (one lr: the made-up accuracy depends on it alone), so asha pauses the second
# at its first rung, ranked behind the first on a tie, as it pauses most trials of a real search
ASHA_STUDY = """
[study]
name = "overhead"
trials = 100
seed = 0

[data]
source = "imagenette-160"
image_size = 32

[train]
epochs = 20

[space]
optimizer = ["adam"]
lr = 1e-2
eps = 1e-8

[pruner]
kind = "asha"
min_epochs = 1
reduction_factor = 3
"""


def test_the_storage_benchmark_runs_the_real_worker_loop(tmp_path):
    rows, study_file = tmp_path / "rows.json", tmp_path / "asha.toml"
    study_file.write_text(ASHA_STUDY)
    run_benchmark(
        # at its default --prefill 0, which had broken (an insert of no rows)
        "storage_overhead", "--workers", "1", "--trials-per-worker", "2",
        "--train-seconds", "2", "--study-file", str(study_file), "--json", str(rows),
    )  # fmt: skip
    [row] = json.loads(rows.read_text())["rows"]
    assert (row["backend"], row["trials"], row["states"]["complete"]) == ("sqlite", 2, 1)
    assert row["states"]["pruned"] >= 1  # paused (its continuation, closed at the end, too)
    # The worker's own time: less the 2 s the whole trial slept and the 0.1 s of the paused one,
    # not 2 s each (which made it negative)
    assert row["storage_calls_per_trial"] > 0 and row["wall_ms_per_trial"] > 0


def asha_trial(state: TrialState, epochs: int, seconds: float, **user_attrs):
    """A trial of a 3-epoch asha study as a worker records it, `epochs` reported, `seconds` long."""
    started = datetime.datetime(2026, 12, 6, 12, 0, 0)
    trial = optuna.trial.create_trial(
        state=state,
        value=0.5 if state == TrialState.COMPLETE else None,
        params={"lr": 0.01},
        distributions={"lr": FloatDistribution(1e-4, 1.0, log=True)},
        intermediate_values=dict.fromkeys(range(1, epochs + 1), 0.3),
        user_attrs={attrs.CONFIG: {"epochs": 3}, attrs.EPOCHS_RUN: epochs, **user_attrs},
    )
    trial.datetime_start = started
    trial.datetime_complete = started + datetime.timedelta(seconds=seconds)
    return trial


def test_the_gpu_check_summary_counts_asha_trials_as_status_does(tmp_path):
    # The GPU check's study pauses and promotes trials (asha): a paused trial is no pruned one, and
    # a continuation's time and epochs cover only what it trained after its checkpoint.
    storage = f"sqlite:///{tmp_path / 'check.db'}"
    study = optuna.create_study(study_name="gpu-check", storage=storage, direction="maximize")
    for trial in [
        asha_trial(TrialState.COMPLETE, 3, 30.0),  # trained every epoch itself
        asha_trial(TrialState.PRUNED, 1, 10.0, **{attrs.PAUSED_AT: 1}),  # then promoted
        asha_trial(
            TrialState.COMPLETE, 3, 20.0,
            **{attrs.PROMOTION_OF: 1, attrs.RETRY_OF: 1, attrs.RESUMED_FROM_EPOCH: 1},
        ),
        asha_trial(TrialState.PRUNED, 1, 10.0, **{attrs.PAUSED_AT: 1}),  # never promoted
        asha_trial(
            TrialState.PRUNED, 0, 0.0,
            **{attrs.PROMOTION_OF: 3, attrs.RETRY_OF: 3, attrs.PROMOTION_CLOSED: "closed"},
        ),
        asha_trial(TrialState.PRUNED, 2, 20.0),  # the one pruned
    ]:  # fmt: skip
        study.add_trial(trial)
    figures = tmp_path / "summary.json"
    gpu_check.summarize(
        argparse.Namespace(
            storage=storage, study="gpu-check", throughput=None, syncs=None, models=None,
            json=figures,
        )
    )  # fmt: skip
    summary = json.loads(figures.read_text())
    counts = ("trials_complete", "trials_paused", "trials_pruned", "trials_failed")
    assert [summary[count] for count in counts] == [2, 1, 1, 0]
    assert summary["epochs_trained"] == 3 + 1 + 2 + 1 + 2
    assert summary["seconds_per_3_epoch_trial"] == 30.0


def test_the_packing_benchmark_takes_a_gpu_by_its_number_as_the_gpu_check_names_it():
    """GPU_CHECK_DEVICE=cuda:1 reaches packing.py's --device: its workers get GPU 1 alone."""
    from benchmarks import packing

    for device, placed in {
        "cpu": ("cpu", None),
        "cuda": ("cuda", [0]),
        "cuda:1": ("cuda", [1]),
    }.items():
        args = packing.parse_args(["--data", "data", "--device", device])
        assert packing.placement(args.device) == placed
    for wrong in ("gpu", "cuda:x", "cpu:0", "cuda:"):
        with pytest.raises(SystemExit):
            packing.parse_args(["--data", "data", "--device", wrong])
