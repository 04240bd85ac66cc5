"""A write whose commit reached the server but whose answer was lost on the way back (the
connection dropped after COMMIT) is retried (search.study.resilience): the retry must find the
write done and count it so, never apply it twice nor fail on it. Caused for real on PostgreSQL,
through a proxy that drops the connection once the server has answered the COMMIT."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy
from optuna.distributions import FloatDistribution
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from search import attrs
from search.study import recorded
from search.study.opening import open_study
from search.study.optuna_compat import (
    cached_storage,
    claim,
    database_behind,
    end_claimed,
    storage_of,
)
from search.study.storage import open_storage, set_user_attrs
from search.studyfile import load_study_config
from tests.helpers.lost_answers import LosingProxy, arm_on, losing_proxy
from tests.helpers.studies import write_study

X = {"x": FloatDistribution(0, 1)}


@pytest.fixture
def proxy(pg_url):
    with losing_proxy(pg_url) as proxy:
        yield proxy


def _study(proxy: LosingProxy) -> optuna.Study:
    storage = open_storage(proxy.url)
    return optuna.create_study(
        study_name="s", storage=cached_storage(storage), direction="maximize"
    )


def _engine(study: optuna.Study) -> sqlalchemy.Engine:
    database = database_behind(storage_of(study))
    assert isinstance(database, RDBStorage)
    return database.engine


def test_a_retried_tell_finds_its_trial_finished_and_succeeds(proxy):
    # Before: the retry raised UpdateFinishedTrialError ("Trial#0 has already finished"), which
    # stopped the worker with a traceback, its trial COMPLETE
    study = _study(proxy)
    trial = study.ask(X)
    arm_on(_engine(study), proxy, "UPDATE trials")
    frozen = study.tell(trial, 0.7)
    assert proxy.answers_lost == 1
    stored = study.get_trials()[0]
    assert (frozen.state, stored.state, stored.value) == (TrialState.COMPLETE,) * 2 + (0.7,)


def test_a_retried_report_writes_its_step_once(proxy):
    # Optuna updates the value of a step already stored: idempotent before and after
    study = _study(proxy)
    trial = study.ask(X)
    arm_on(_engine(study), proxy, "INSERT INTO trial_intermediate_values")
    trial.report(0.5, 1)
    trial.report(0.6, 2)
    assert proxy.answers_lost == 1
    assert study.get_trials()[0].intermediate_values == {1: 0.5, 2: 0.6}


def test_retried_user_attributes_are_written_once(proxy):
    # Upserts by key: idempotent before and after
    study = _study(proxy)
    trial = study.ask(X)
    arm_on(_engine(study), proxy, "INSERT INTO trial_user_attributes")
    set_user_attrs(trial, {"a": 1, "b": [1, 2]})
    assert proxy.answers_lost == 1
    assert study.get_trials()[0].user_attrs == {"a": 1, "b": [1, 2]}


def test_a_retried_claim_knows_the_trial_it_took(proxy):
    # Before: the retry found the trial RUNNING, took it for another worker's and returned None:
    # nobody trained it until the liveness check failed it (no heartbeat) and queued a retry
    study = _study(proxy)
    study.enqueue_trial({"x": 0.5})
    [queued] = study.get_trials()
    arm_on(_engine(study), proxy, "UPDATE trials")
    claimed = claim(study, queued)
    assert proxy.answers_lost == 1
    assert claimed is not None and claimed.number == queued.number
    assert study.get_trials()[0].state == TrialState.RUNNING
    assert claim(study, queued) is None  # a later claim is another caller's: refused
    assert study.tell(claimed, 0.9).state == TrialState.COMPLETE


def test_a_retried_end_of_a_dead_workers_trial_knows_it_ended_it(proxy):
    # Before: the retry raised "has already finished", which end_claimed reads as another worker
    # having ended the trial first: the trial of a dead worker was failed but no retry queued
    study = _study(proxy)
    study.ask(X)
    [running] = study.get_trials()
    arm_on(_engine(study), proxy, "UPDATE trials")
    assert end_claimed(study, running, TrialState.FAIL, {"fail_reason": "its worker is gone"})
    assert proxy.answers_lost == 1
    assert study.get_trials()[0].state == TrialState.FAIL


def test_a_retried_ask_creates_one_trial(proxy):
    # Before: the retry inserted a second trial; the first stayed RUNNING with no worker until the
    # dead-trial sweep failed it, one trial of the budget spent on nothing
    study = _study(proxy)
    arm_on(_engine(study), proxy, "INSERT INTO trials")
    trial = study.ask(X)
    assert proxy.answers_lost == 1
    [stored] = study.get_trials()
    assert (stored.number, stored.state) == (trial.number, TrialState.RUNNING)
    assert study.tell(trial, 0.4).state == TrialState.COMPLETE
    assert study.ask(X).number == 1  # numbers go on from the one trial made


def test_a_retried_enqueue_queues_one_trial(proxy):
    study = _study(proxy)
    arm_on(_engine(study), proxy, "INSERT INTO trials")
    study.enqueue_trial({"x": 0.25})
    assert proxy.answers_lost == 1
    [queued] = study.get_trials()
    assert (queued.state, queued.system_attrs["fixed_params"]) == (TrialState.WAITING, {"x": 0.25})
    assert study.ask(X).params == {"x": 0.25}


def test_a_retried_study_creation_knows_the_study_it_made(proxy, tmp_path, image_folder):
    # Before: the retry found the name taken and took the study for another run's, which it
    # joined: a study without its settings, budget or points, which every later worker refused
    config = load_study_config(write_study(tmp_path, image_folder, trials=3))
    storage = open_storage(proxy.url)
    arm_on(storage.engine, proxy, "INSERT INTO studies")
    study = open_study(config, storage, {"classes": 2})
    assert proxy.answers_lost == 1
    assert optuna.get_all_study_names(storage) == ["test-study"]
    assert (recorded.budget(study, 999), study.metric_names) == (3, [attrs.METRIC])
    assert recorded.study_id(study) is not None
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):  # another creation is refused
        optuna.create_study(study_name="test-study", storage=storage)
