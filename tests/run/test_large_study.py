"""A study of thousands of stored trials is counted and resumed as a small one is: the budget counts
each first attempt once, a queued retry runs first, and the worker stops at the budget."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from search import attrs
from search.results.status import study_status
from search.run.study_data import fingerprint, load_study_data
from search.run.worker import WorkerOptions, run_worker
from search.study.opening import open_study, set_budget
from search.study.retries import queue_retry
from search.study.storage import open_storage
from search.studyfile import load_study_config
from tests.helpers.bulk_trials import add_trials_in_bulk
from tests.helpers.studies import write_study

DISTRIBUTIONS = {
    "optimizer": CategoricalDistribution(["sgd", "adam"]),
    "lr": FloatDistribution(1e-3, 0.1, log=True),
}
PLAIN, RETRIED = 2980, 10  # finished first attempts; of those, FAIL ones with a finished retry


def finished(number: int, state: TrialState, **user_attrs) -> optuna.trial.FrozenTrial:
    lr = 1e-3 * (1 + number % 90)
    return create_trial(
        state=state,
        value=0.1 + (number % 97) / 200 if state == TrialState.COMPLETE else None,
        params={"optimizer": ("sgd", "adam")[number % 2], "lr": lr},
        distributions=DISTRIBUTIONS,
        intermediate_values={1: 0.1},
        user_attrs={attrs.EPOCHS_RUN: 1, **user_attrs},
    )


def stored_trials() -> list[optuna.trial.FrozenTrial]:
    """Numbers 0..2999 as a study of that size leaves them, then a stopped trial (3000) whose retry
    waits in the queue (3001)."""
    plain = [
        finished(n, (TrialState.COMPLETE, TrialState.PRUNED)[n % 3 == 0]) for n in range(PLAIN)
    ]
    failed = [finished(PLAIN + n, TrialState.FAIL) for n in range(RETRIED)]
    retries = [
        finished(PLAIN + RETRIED + n, TrialState.COMPLETE, **{attrs.RETRY_OF: PLAIN + n})
        for n in range(RETRIED)
    ]
    return [*plain, *failed, *retries, finished(3000, TrialState.FAIL)]


def test_a_study_of_thousands_of_trials_is_counted_and_resumed(
    tmp_path, image_folder, cache_dir, one_torch_thread
):
    config = load_study_config(write_study(tmp_path, image_folder, trials=2, epochs=1))
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    data = load_study_data(config, cache_dir, progress=False)
    study = open_study(config, open_storage(url), fingerprint(config, data))
    add_trials_in_bulk(study, stored_trials())
    stopped = study.trials[3000]
    assert queue_retry(study, stopped, max_retries=2, reason="its worker was stopped")
    first_attempts = PLAIN + RETRIED + 1
    set_budget(study, first_attempts + 2)

    [row] = study_status(open_storage(url), config.study.name)
    assert (row["trials"], row["budget_spent"], row["waiting"], row["retries"]) == (
        3002,
        first_attempts,
        1,
        RETRIED + 1,
    )

    summary = run_worker(config, WorkerOptions(url, "cpu", cache_dir, progress=False), data=data)

    trials = optuna.load_study(study_name=config.study.name, storage=url).trials
    assert summary.finished == 3  # the queued retry, then two new trials: the budget's
    assert trials[3001].state.is_finished() and trials[3001].user_attrs[attrs.RETRY_OF] == 3000
    assert len(trials) == 3004 and all(trial.state.is_finished() for trial in trials)
    [row] = study_status(open_storage(url), config.study.name)
    assert row["budget_spent"] == row["budget"] == first_attempts + 2
