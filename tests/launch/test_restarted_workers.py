"""`hpsearch run`'s local workers killed by a signal nobody asked for (the kernel's out-of-memory
killer, a `kill -9`): each is started again in its slot, so its GPU does not stand idle for the rest
of the study, and its trial resumes; past the restarts a slot allows, the run itself finishes what
they left. Either way nothing is left RUNNING and every trial is finished."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from optuna.trial import TrialState

from benchmarks.chaos.search_run import forked_workers
from search import attrs
from search.cli import main
from search.launch import local
from tests.helpers.studies import trials_of, write_study


def _run_killing(
    tmp_path: Path,
    image_folder: Path,
    cache_dir: Path,
    kill: Callable[[list[int]], bool],
    signum: int = signal.SIGKILL,
) -> tuple[int, str, list[int]]:
    """`hpsearch run` of two trials on two worker processes while a thread kills, with `signum`,
    the workers `kill(killed so far)` says to, once a trial has written its first checkpoint; the
    run's exit status, the pids killed."""
    path = write_study(
        tmp_path, image_folder, trials=2, epochs=2, pruner='kind = "none"', image_size=16,
        extra="\n[checkpoint]\nevery_epochs = 1\n",
    )  # fmt: skip
    url = f"sqlite:///{tmp_path / 's.db'}"
    flags = ["--storage", url, "--cache-dir", str(cache_dir), "--device", "cpu"]
    killed: list[int] = []
    done = threading.Event()

    def killer() -> None:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "user-checkpoints").glob("*/trial-*/last.pt")):
            if done.wait(0.05) or time.monotonic() > deadline:
                return
        while kill(killed) and not done.wait(0.02):
            for worker in forked_workers(psutil.Process()):
                if worker.pid not in killed and kill(killed):
                    killed.append(worker.pid)
                    worker.send_signal(signum)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        status = main(["run", str(path), *flags, "--workers", "2", "--log-format", "text"])
    finally:
        done.set()
        thread.join()
    return status, url, killed


def _all_finished(url: str) -> None:
    trials = trials_of(url)
    assert {trial.state for trial in trials} <= {TrialState.COMPLETE, TrialState.FAIL}
    failed = [trial for trial in trials if trial.state == TrialState.FAIL]
    assert failed and all("is gone" in attrs.fail_reason(trial) for trial in failed)
    lineages = {attrs.first_attempt(trial) for trial in trials}
    complete = {attrs.first_attempt(t) for t in trials if t.state == TrialState.COMPLETE}
    assert lineages == complete == {0, 1}, "every trial the killed workers held was finished"


def test_workers_killed_mid_trial_are_started_again_and_resume_their_trials(
    tmp_path, image_folder, cache_dir, capfd
):
    status, url, killed = _run_killing(
        tmp_path, image_folder, cache_dir, lambda killed: len(killed) < 2
    )
    err = capfd.readouterr().err

    assert status == 0 and len(killed) == 2, err
    for pid in killed:
        assert f"(pid {pid}) was killed by SIGKILL; started again as pid" in err, err
    assert "(restart 1 of 3)" in err and "runs what it left" not in err, err
    _all_finished(url)


def test_a_worker_killed_by_a_signal_python_has_no_name_for_is_started_again(
    tmp_path, image_folder, cache_dir, capfd
):
    """A real-time signal (SIGRTMIN+3, whose default is to end the process) has no name in
    Python's signal.Signals: naming it raised ValueError, and `run` ended in a traceback."""
    signum = signal.SIGRTMIN + 3
    status, url, killed = _run_killing(
        tmp_path, image_folder, cache_dir, lambda killed: not killed, signum
    )
    err = capfd.readouterr().err

    assert status == 0 and len(killed) == 1, err
    assert f"was killed by signal {signum}; started again as pid" in err, err
    assert {attrs.first_attempt(trial) for trial in trials_of(url)} == {0, 1}


def test_a_slot_killed_past_its_restarts_is_left_and_the_run_finishes_its_trials(
    tmp_path, image_folder, cache_dir, capfd, monkeypatch
):
    """Each worker, and each one started in its place, killed as it appears: after a slot's last
    restart the slot stays empty, and the run trains what they left in its own process."""
    monkeypatch.setattr(local, "MAX_RESTARTS", 1)
    status, url, killed = _run_killing(
        tmp_path, image_folder, cache_dir, lambda killed: len(killed) < 4
    )
    err = capfd.readouterr().err

    assert status == 0 and len(killed) == 4, err
    assert err.count("was killed by SIGKILL; started again") == 2, err
    assert err.count("was killed by SIGKILL after 1 restarts: not started again") == 2, err
    [line] = [line for line in err.splitlines() if "this process runs what it left" in line]
    assert line.count("was killed by SIGKILL") == 2, err
    _all_finished(url)


@pytest.fixture(autouse=True)
def _no_worker_left():
    """Whatever a test finds, a worker it left is killed: else it trains on beside the tests."""
    yield
    for worker in forked_workers(psutil.Process()):
        worker.kill()
