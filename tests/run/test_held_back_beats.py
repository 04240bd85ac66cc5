"""A worker's heartbeat that the storage held back (its write lock held, the gRPC proxy down) was
held back for every worker: a sweep just after counts no trial dead for that silence, and one
still silent a grace later is. The chaos run through the gRPC proxy found a live trial failed
as dead by the first sweep after an outage, and the epoch it then reported thrown away."""

from __future__ import annotations

import sqlite3
import time

import optuna
import pytest
from optuna.trial import TrialState

from benchmarks.chaos.proxy import Proxy
from search import attrs
from search.run import liveness
from search.study.optuna_compat import trial_id_of
from search.study.storage import open_storage

GRACE = 2.0
INTERVAL = 0.2
OUTAGE = GRACE + 0.5  # their last beat is older than the grace once it ends


def two_running_trials(
    storage: optuna.storages.BaseStorage,
) -> tuple[optuna.Study, optuna.Trial, optuna.Trial]:
    """A study with a trial of another machine that beat just now, and one of this process's."""
    study = optuna.create_study(storage=storage, study_name="beats", direction="maximize")
    theirs, mine = study.ask(), study.ask()
    theirs.set_user_attr(attrs.WORKER, {**liveness.this_worker(), "host": "another-machine"})
    mine.set_user_attr(attrs.WORKER, liveness.this_worker())
    storage.set_trial_system_attr(trial_id_of(theirs), attrs.HEARTBEAT, time.time())
    return study, theirs, mine


def sweep(study: optuna.Study) -> list[int]:
    return liveness.fail_dead_trials(study, GRACE, max_retries=1)


def beats_again(storage: optuna.storages.BaseStorage, trial: optuna.Trial) -> None:
    """Until a beat of `trial` made from now on has landed: the storage writes again."""
    since = time.time()
    deadline = since + 60
    while storage.get_trial(trial_id_of(trial)).system_attrs.get(attrs.HEARTBEAT, 0) < since:
        assert time.time() < deadline, "no beat landed a minute after the outage"
        time.sleep(INTERVAL / 4)


def test_beats_held_back_by_a_write_lock_count_as_no_silence(tmp_path):
    path = tmp_path / "studies.db"
    study, theirs, mine = two_running_trials(open_storage(f"sqlite:///{path}"))
    with liveness.Heartbeat(study._storage, mine, INTERVAL):
        holder = sqlite3.connect(path, isolation_level=None)  # another process's write, stalled
        holder.execute("BEGIN IMMEDIATE")
        time.sleep(OUTAGE)
        holder.execute("COMMIT")
        holder.close()
        beats_again(study._storage, mine)

        assert sweep(study) == [], "their beats were held back as long as mine"
        time.sleep(GRACE + INTERVAL)
        assert sweep(study) == [theirs.number], "still silent a grace later: dead"
    states = {trial.number: trial.state for trial in study.get_trials()}
    assert states[mine.number] == TrialState.RUNNING


def test_beats_missed_while_the_grpc_proxy_was_down_count_as_no_silence(tmp_path):
    pytest.importorskip("grpc")
    proxy = Proxy(f"sqlite:///{tmp_path / 'behind-proxy.db'}", tmp_path / "grpc-proxy.log")
    proxy.start()
    try:
        storage = open_storage(proxy.url, wait_seconds=60)
        study, theirs, mine = two_running_trials(storage)
        with liveness.Heartbeat(storage, mine, INTERVAL):
            proxy.kill()
            time.sleep(OUTAGE)  # my beats fail, as theirs do
            proxy.start()
            beats_again(storage, mine)

            assert sweep(study) == []
            time.sleep(GRACE + INTERVAL)
            assert sweep(study) == [theirs.number]
    finally:
        proxy.kill()
