"""Nothing lost when a process dies: a worker killed between ending a trial and queuing what
continues it (a stopped trial's retry, a dead worker's trial's retry, a paused trial's
continuation) left the lineage with nothing to resume it, for good. The next worker queues it.

The kills are real: a worker process that SIGKILLs itself at the moment it would queue the
follow-up, after the trial's end was written."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading

import optuna
import pytest
from optuna.trial import TrialState

from search import attrs, locations
from search.results.status import study_status
from search.run import liveness, trial_files
from search.run.joining import join
from search.run.study_data import fingerprint, load_study_data
from search.run.worker import WorkerOptions, run_worker
from search.study import orphans, promotion
from search.study.budget_lock import BudgetLock
from search.study.opening import open_study
from search.study.optuna_compat import claim
from search.study.retries import queue_retry
from search.study.space import suggest
from search.study.storage import open_storage, set_user_attrs
from search.studyfile import load_study_config
from tests.helpers.made_trials import finish_by_hand
from tests.helpers.studies import trials_of, write_study
from tests.run.test_asha import ASHA, SPACE, WEAK_FIRST
from tests.run.test_dead_workers import a_gone_process

NAME = "test-study"
REASON = "stopped by RuntimeError in its worker"

# A worker that dies by SIGKILL where it would queue a follow-up (every one is queued through
# `enqueue`), its trial's end written; with "stop", stopped by a SIGTERM in its trial's epoch 2
KILLED_AT_FOLLOW_UP = """
import os, signal, sys
from pathlib import Path
import torch
from search.run import objective
from search.run.stopping import StopRequest
from search.run.worker import WorkerOptions, run_worker
from search.study import promotion, retries
from search.studyfile import load_study_config

path, url, cache_dir, checkpoints, mode = sys.argv[1:]
torch.set_num_threads(1)
stop = StopRequest()
report = objective.report_epoch

def then_sigterm(trial, epoch, val_top1, **last):
    report(trial, epoch, val_top1, **last)
    if mode == "stop":
        stop.request("SIGTERM")

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

objective.report_epoch = then_sigterm
retries.enqueue = promotion.enqueue = killed
folders = {"cache_dir": Path(cache_dir), "checkpoint_dir": Path(checkpoints)}
options = WorkerOptions(url, "cpu", progress=False, **folders)
run_worker(load_study_config(path), options, create=True, stop=stop)
sys.exit("not killed: no follow-up was queued")
"""


def killed_at_follow_up(path, options: WorkerOptions, *, stop: bool = False) -> None:
    args = [path, options.storage_url, options.cache_dir, options.checkpoint_dir]
    args.append("stop" if stop else "run")
    worker = subprocess.run(
        [sys.executable, "-c", KILLED_AT_FOLLOW_UP, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr


@pytest.fixture
def options(tmp_path, cache_dir):
    return WorkerOptions(
        f"sqlite:///{tmp_path / 's.db'}",
        "cpu",
        cache_dir,
        progress=False,
        log_format="text",
        checkpoint_dir=tmp_path / "checkpoints",
    )


def test_a_stopped_trial_whose_worker_was_killed_before_queuing_its_retry_resumes(
    tmp_path, image_folder, options, capfd, one_torch_thread
):
    path = write_study(
        tmp_path, image_folder, trials=1, epochs=2, pruner='kind = "none"', image_size=16
    )
    killed_at_follow_up(path, options, stop=True)
    (stopped,) = trials_of(options.storage_url)
    assert stopped.state == TrialState.FAIL, "the window: FAIL written, its retry not queued"
    assert stopped.user_attrs[attrs.FAIL_REASON] == "stopped in epoch 2 (SIGTERM)"

    capfd.readouterr()
    config = load_study_config(path)
    run_worker(config, options)  # its budget of 1 is spent: the lineage's retry alone may run
    line = (
        "trial 0 was left without its retry (its worker died before queuing it); queued now as "
        "trial 1, which resumes it from its last checkpoint"
    )
    assert line in capfd.readouterr().err
    stopped, retry = trials_of(options.storage_url)
    assert retry.user_attrs[attrs.RETRY_OF] == 0 == retry.user_attrs[attrs.RETRIED_FROM]
    assert retry.user_attrs[attrs.RETRY_REASON] == "trial 0: stopped in epoch 2 (SIGTERM)"
    assert retry.user_attrs[attrs.FAULTS] == 0, "a stop asked for spends no retry"
    assert retry.state == TrialState.COMPLETE and retry.user_attrs[attrs.RESUMED_FROM_EPOCH] == 1

    run_worker(config, options)  # the lineage has its retry: nothing more is queued
    assert len(trials_of(options.storage_url)) == 2


def test_a_dead_trial_whose_sweeping_worker_was_killed_before_queuing_its_retry_resumes(
    tmp_path, image_folder, options, capfd, one_torch_thread
):
    path = write_study(tmp_path, image_folder, trials=1, epochs=1, pruner='kind = "none"')
    config = load_study_config(path)
    study = join(config, options, create=True).study
    dead = study.ask()
    suggest(dead, config)
    dead.set_user_attr(attrs.WORKER, a_gone_process())

    killed_at_follow_up(path, options)  # its sweep fails the dead trial, and dies
    (failed,) = trials_of(options.storage_url)
    assert failed.state == TrialState.FAIL and "is gone" in failed.user_attrs[attrs.FAIL_REASON]

    capfd.readouterr()
    run_worker(config, options)
    assert "trial 0 was left without its retry (its worker died" in capfd.readouterr().err
    failed, retry = trials_of(options.storage_url)
    assert retry.user_attrs[attrs.RETRY_REASON] == f"trial 0: {failed.user_attrs['fail_reason']}"
    assert retry.user_attrs[attrs.FAULTS] == 1, "a dead worker is a fault, as its sweep counts it"
    assert retry.state == TrialState.COMPLETE


def test_a_paused_trial_whose_worker_was_killed_before_queuing_its_continuation_is_promoted(
    tmp_path, image_folder, options, capfd, one_torch_thread
):
    path = write_study(
        tmp_path, image_folder, trials=2, epochs=2, space=SPACE, pruner=ASHA, extra=WEAK_FIRST
    )
    config = load_study_config(path)
    study = join(config, options, create=True).study
    study.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={1: 1.0, 2: 1.0}))
    for _ in range(2):  # L1, L2, which the test finishes below the paused trial at its rung
        study.enqueue_trial({"optimizer": "sgd", "lr": 1e-3, "momentum": 0.0})

    killed_at_follow_up(path, options)  # trial 0 pauses at epoch 1, and its worker dies
    paused = trials_of(options.storage_url)[0]
    assert paused.state == TrialState.PRUNED and paused.user_attrs[attrs.PAUSED_AT] == 1
    assert not [t for t in trials_of(options.storage_url) if attrs.PROMOTION_OF in t.user_attrs]

    finish_by_hand(study, at_rung_1=0.0)  # now 2nd of 4 at its rung: in the top half
    capfd.readouterr()
    run_worker(config, options)  # a promotion runs whatever the budget (spent: trial 0 and H)
    assert re.search(
        r"trial 0 was left without its continuation \(its worker died before queuing it\); "
        r"queued now as trial \d+, which continues it from its checkpoint if promoted",
        capfd.readouterr().err,
    )
    (continuation,) = [
        t for t in trials_of(options.storage_url) if attrs.PROMOTION_OF in t.user_attrs
    ]
    assert continuation.state == TrialState.COMPLETE
    assert continuation.user_attrs[attrs.RESUMED_FROM_EPOCH] == 1


def a_stopped_trial(
    tmp_path, image_folder, cache_dir, url: str, *, by: dict, faults: int = 0, ago: float = 0
):
    """A trial ended FAIL as a worker ends one it stopped (`by` that worker, `ago` seconds ago),
    its retry not queued: (config, study, the trial as stored)."""
    config = load_study_config(write_study(tmp_path, image_folder, trials=1, epochs=1))
    data = load_study_data(config, cache_dir, progress=False)
    study = open_study(config, open_storage(url), fingerprint(config, data))
    trial = study.ask()
    suggest(trial, config)
    trial.set_user_attr(attrs.FAULTS, faults)
    marks = orphans.stop_marks(trial, REASON, True, 2, by)
    marks[attrs.RETRY_DUE]["at"] -= ago
    set_user_attrs(trial, marks)
    study.tell(trial, state=TrialState.FAIL)
    return config, study, trials_of(url)[0]


def sweep(
    study: optuna.Study, url: str, grace_seconds: float = 3600, max_retries: int = 2
) -> list[orphans.Orphan]:
    lock = BudgetLock(url, NAME)
    trials = study.get_trials(deepcopy=False)
    return orphans.recover(study, trials, grace_seconds, max_retries, lock, liveness.is_gone)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_two_workers_sweeping_at_once_queue_one_retry_of_an_orphan(
    tmp_path, image_folder, cache_dir, backend, request
):
    url = (
        f"sqlite:///{tmp_path / 's.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    a_stopped_trial(tmp_path, image_folder, cache_dir, url, by=a_gone_process())
    start = threading.Barrier(2)
    found: list[list[orphans.Orphan]] = []

    def one_sweep() -> None:
        mine = optuna.load_study(study_name=NAME, storage=open_storage(url))
        start.wait()
        found.append(sweep(mine, url))

    sweepers = [threading.Thread(target=one_sweep) for _ in range(2)]
    for sweeper in sweepers:
        sweeper.start()
    for sweeper in sweepers:
        sweeper.join()
    assert sorted(len(recovered) for recovered in found) == [0, 1]
    _, retry = trials_of(url)
    assert retry.state == TrialState.WAITING and retry.user_attrs[attrs.RETRIED_FROM] == 0


def test_an_orphan_whose_recorder_may_live_is_left_to_it_for_the_grace(
    tmp_path, image_folder, cache_dir
):
    url = f"sqlite:///{tmp_path / 's.db'}"
    _, study, _ = a_stopped_trial(tmp_path, image_folder, cache_dir, url, by=liveness.this_worker())
    assert sweep(study, url) == [], "alive, and within the grace: it queues the retry itself"
    (recovered,) = sweep(study, url, grace_seconds=0)  # silent since for longer: dead
    assert (recovered.trial.number, recovered.kind, recovered.follow_up) == (0, "retry", 1)
    assert trials_of(url)[1].user_attrs[attrs.RETRY_REASON] == f"trial 0: {REASON}"


def test_a_worker_with_nothing_to_start_waits_for_a_retry_another_machine_owes(
    tmp_path, image_folder, cache_dir, capfd
):
    """It waited for silent RUNNING trials only, and ended with the lineage left behind when that
    machine was lost: `run` called the study done with a trial that no one would resume."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    elsewhere = {**liveness.this_worker(), "host": "lost-machine"}
    config, _, _ = a_stopped_trial(tmp_path, image_folder, cache_dir, url, by=elsewhere, ago=5)
    assert config.heartbeat.grace_seconds == 8  # an orphan 3 s from now, if no one queues it

    options = WorkerOptions(url, "cpu", cache_dir, progress=False, log_format="text")
    summary = run_worker(config, options)
    err = capfd.readouterr().err
    assert "waiting for trial 0's retry: the worker that ended it may still queue it" in err
    _, retry = trials_of(url)
    assert retry.user_attrs[attrs.RETRIED_FROM] == 0 and summary.finished == 1
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)


def test_a_retry_whose_grace_runs_out_between_the_sweep_and_the_wait_is_still_run(
    tmp_path, image_folder, cache_dir, monkeypatch
):
    # The sweep saw the trial within its grace, the wait (a moment later) past it: neither took
    # it, and the worker ended with the lineage left behind (CI, under load). The first sweep is
    # made to come before the grace ran out: it finds nothing
    url = f"sqlite:///{tmp_path / 's.db'}"
    elsewhere = {**liveness.this_worker(), "host": "lost-machine"}
    config, _, _ = a_stopped_trial(tmp_path, image_folder, cache_dir, url, by=elsewhere, ago=9)
    real_sweep, sweeps = liveness.sweep, []

    def sweep_later(*args, **kwargs) -> bool:
        sweeps.append(len(sweeps))
        return len(sweeps) > 1 and real_sweep(*args, **kwargs)

    monkeypatch.setattr(liveness, "sweep", sweep_later)
    summary = run_worker(config, WorkerOptions(url, "cpu", cache_dir, progress=False))
    _, retry = trials_of(url)
    assert retry.user_attrs[attrs.RETRIED_FROM] == 0 and summary.finished == 1


def test_a_trial_due_a_follow_up_that_has_it_is_left_alone(tmp_path, image_folder, cache_dir):
    url = f"sqlite:///{tmp_path / 's.db'}"
    _, study, stopped = a_stopped_trial(tmp_path, image_folder, cache_dir, url, by=a_gone_process())
    paused = study.ask()
    queue_retry(study, stopped, 2, REASON)  # as its worker did, before it died
    set_user_attrs(paused, {attrs.PAUSED_AT: 1, attrs.WORKER: a_gone_process()})
    promotion.queue_continuation(study, study.tell(paused, state=TrialState.PRUNED))
    assert sweep(study, url, grace_seconds=0) == []
    assert len(trials_of(url)) == 4


def test_an_orphan_out_of_retries_stays_failed_and_its_checkpoint_is_removed(
    tmp_path, image_folder, cache_dir, capfd
):
    url = f"sqlite:///{tmp_path / 's.db'}"
    config, study, stopped = a_stopped_trial(
        tmp_path, image_folder, cache_dir, url, by=a_gone_process(), faults=2
    )  # its third fault, and max_retries is 2
    root = locations.checkpoint_root(None, config.checkpoint.dir)
    folder = trial_files.trial_folder(trial_files.study_folder(root, study), stopped.number)
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(b"a checkpoint")
    # A worker allowing more retries than its recorder did revives no lineage ended for good
    assert [orphan.follow_up for orphan in sweep(study, url, max_retries=5)] == [None]

    run_worker(config, WorkerOptions(url, "cpu", cache_dir, progress=False, log_format="text"))
    (failed,) = trials_of(url)
    assert failed.state == TrialState.FAIL
    assert not folder.exists(), "no attempt will resume from it"
    assert "left without" not in capfd.readouterr().err


def test_a_retry_queued_twice_runs_once(tmp_path, image_folder, cache_dir, capfd):
    """Two workers that queued one trial's retry in an outage (the chaos run, 2026-12-07) ran both
    at once on the lineage's one checkpoint: one crashed renaming a file the other removed."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    config, study, stopped = a_stopped_trial(
        tmp_path, image_folder, cache_dir, url, by=a_gone_process()
    )
    assert [queue_retry(study, stopped, 2, REASON) for _ in range(2)] == [1, 2]

    run_worker(config, WorkerOptions(url, "cpu", cache_dir, progress=False, log_format="text"))
    assert (
        "trial 2 closed without running: trial 1 continues trial 0, which both were queued to "
        "continue (two workers queued one at once)"
    ) in capfd.readouterr().err
    _, retry, duplicate = trials_of(url)
    assert retry.state == TrialState.COMPLETE
    assert duplicate.state == TrialState.FAIL and not duplicate.intermediate_values
    assert duplicate.user_attrs[attrs.DUPLICATE_OF] == 1
    counts = promotion.shown_counts(trials_of(url))
    assert (counts["complete"], counts["stopped"], sum(counts.values())) == (1, 1, 2)
    (shown,) = study_status(open_storage(url), NAME)
    assert (shown["trials"], shown["retries"]) == (2, 1), "the duplicate never ran"


def test_of_a_follow_up_queued_twice_the_one_taken_goes_on(tmp_path, image_folder, cache_dir):
    url = f"sqlite:///{tmp_path / 's.db'}"
    _, study, stopped = a_stopped_trial(tmp_path, image_folder, cache_dir, url, by=a_gone_process())
    first, second = (queue_retry(study, stopped, 2, REASON) for _ in range(2))
    lock = BudgetLock(url, NAME)
    # A sweeper's claim, as it closes the second: no worker runs it. Another sweeper that read the
    # study then took it for the one that goes on, and closed the first: nothing continued trial 0
    taken = claim(study, trials_of(url)[second])
    assert orphans.close_duplicates(study, trials_of(url), lock) == []
    taken.set_user_attr(attrs.WORKER, liveness.this_worker())  # a worker's, which read too early
    (closed,) = orphans.close_duplicates(study, trials_of(url), lock)
    assert (closed.trial.number, closed.continued, closed.first) == (first, 0, second)
    assert trials_of(url)[first].user_attrs[attrs.FAIL_REASON] == (
        "not run: trial 2 continues trial 0, queued for it too"
    )
    assert orphans.close_duplicates(study, trials_of(url), lock) == [], "closed once"
