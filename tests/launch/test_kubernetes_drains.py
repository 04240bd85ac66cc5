"""A drained, preempted or evicted worker pod is replaced: SIGTERM stops its `hpsearch worker`,
which queues its trial to resume and exits the status that the workers' Job ignores, a status
other than 0, which would end the pod Succeeded and complete its index for good (a pod failure
policy reads only failed pods). `hpsearch worker` run as the manifest says, with its paths made
this machine's: `--exit-status-if-stopped` changes its status only when a signal stopped it, and
without the flag (SLURM's script, a local run) it still exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from search import attrs
from search.cli import main
from tests.helpers import ROOT
from tests.helpers.studies import trials_of, write_study
from tests.launch.test_kubernetes import job, pod_spec, render

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FLAG = "--exit-status-if-stopped"


def worker_manifest(capsys) -> tuple[dict, dict]:
    """The workers' Job as `hpsearch kubernetes` renders it, and its worker container."""
    workers = job(render(capsys, "--gpus-per-worker", "0"), "workers")
    (worker,) = pod_spec(workers)["containers"]
    return workers, worker


def stopped_status(workers: dict, worker: dict) -> int:
    """The worker's status that the workers' Job ignores, as the manifest passes it."""
    status = int(worker["args"][worker["args"].index(FLAG) + 1])
    ignored = {"containerName": worker["name"], "operator": "In", "values": [status]}
    assert {"action": "Ignore", "onExitCodes": ignored} in workers["spec"]["podFailurePolicy"][
        "rules"
    ]
    return status


def local_args(args: list[str], study: Path, tmp_path: Path, image_folder: Path) -> list[str]:
    """The manifest's command line with this machine's study file, data and folders."""
    here = {
        "--data": str(image_folder),
        "--cache-dir": str(tmp_path / "cache"),
        "--checkpoint-dir": str(tmp_path / "checkpoints"),
        "--device": "cpu",
    }
    local = [args[0], str(study), *args[2:]]
    for flag, value in here.items():
        local[local.index(flag) + 1] = value
    return local


def sigterm_mid_trial(args: list[str], url: str, tmp_path: Path, name: str) -> int:
    """Start `hpsearch worker ARGS`, send SIGTERM once its trial has finished an epoch, and return
    its exit status, once it has stopped its trial."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HPSEARCH_STORAGE": url,  # as the pod's Secret gives it
        "OMP_NUM_THREADS": "1",
    }
    log = tmp_path / "worker.log"
    with log.open("w") as err:
        worker = subprocess.Popen(
            [sys.executable, "-m", "search", *args], env=environment, stderr=err, cwd=tmp_path
        )
        try:
            deadline = time.monotonic() + 120
            while not any(trial.intermediate_values for trial in trials_of(url, name)):
                assert worker.poll() is None, f"the worker exited: {log.read_text()}"
                assert time.monotonic() < deadline, "no epoch within 120 s"
                time.sleep(0.1)
            worker.send_signal(signal.SIGTERM)
            status = worker.wait(60)
        finally:
            if worker.poll() is None:
                worker.kill()
    trials = trials_of(url, name)
    assert trials[0].state == TrialState.FAIL, log.read_text()
    assert "stopped in epoch" in trials[0].user_attrs[attrs.FAIL_REASON]
    assert [trial.state for trial in trials[1:]] == [TrialState.WAITING], "queued to resume"
    return status


@pytest.mark.parametrize("flagged", [True, False], ids=["as-the-manifest-says", "without-flag"])
def test_a_worker_stopped_mid_trial_by_sigterm_exits_the_status_its_job_ignores(
    tmp_path, image_folder, capsys, flagged
):
    workers, worker = worker_manifest(capsys)
    status = stopped_status(workers, worker)
    assert status not in (0, 1, 2)  # done, a crash, a user's error
    # One trial, many epochs: the signal comes in its first few
    study = write_study(tmp_path, image_folder, name="drained", trials=1, epochs=50, image_size=16)
    url = f"sqlite:///{tmp_path / 'drained.db'}"
    assert main(["run", str(study), "--create-only", "--storage", url]) == 0
    args = local_args(worker["args"], study, tmp_path, image_folder)
    if not flagged:  # as SLURM's script and a local run start it
        at = args.index(FLAG)
        args = args[:at] + args[at + 2 :]
    assert sigterm_mid_trial(args, url, tmp_path, "drained") == (status if flagged else 0)


def test_a_worker_whose_study_s_budget_is_met_exits_0_and_completes_its_index(
    tmp_path, image_folder, capsys
):
    _, worker = worker_manifest(capsys)
    study = write_study(tmp_path, image_folder, name="done", trials=1, epochs=1)
    url = f"sqlite:///{tmp_path / 'done.db'}"
    assert main(["run", str(study), "--create-only", "--storage", url]) == 0
    args = local_args(worker["args"], study, tmp_path, image_folder)
    assert FLAG in args
    assert main([*args, "--storage", url]) == 0, capsys.readouterr().err
    assert [trial.state for trial in trials_of(url, "done")] == [TrialState.COMPLETE]


@pytest.mark.parametrize("status", ["0", "1", "2", "126", "143", "seventy"])
def test_a_stopped_status_that_would_mean_something_else_is_refused(capsys, status):
    with pytest.raises(SystemExit) as exit:
        main(["worker", "--study", "s", FLAG, status])
    assert exit.value.code == 2
    assert f"argument {FLAG}: expected an exit status from 3 to 125" in capsys.readouterr().err
