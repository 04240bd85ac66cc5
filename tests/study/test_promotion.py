"""asha's bookkeeping on real storages: rungs, who pauses, who is promoted (by one worker alone),
what is closed, and that a new trial never takes a paused trial's queued continuation.

The trials here are made by hand with the values a rung compares, so each case is exact; the
searches that train are in tests/run/test_asha.py.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import optuna
import pytest
from optuna.trial import TrialState

from search import attrs
from search.study import promotion, retries
from search.study.optuna_compat import claim
from search.study.promotion import AshaPruner, rungs
from search.study.storage import open_storage
from tests.helpers.made_trials import add_rung_1_trial


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'asha.db'}"
    return request.getfixturevalue("pg_url")


def new_study(url: str) -> optuna.Study:
    return optuna.create_study(
        study_name="asha", storage=open_storage(url, create=True), direction="maximize"
    )


def pause(study: optuna.Study, at_rung_1: float) -> optuna.trial.FrozenTrial:
    paused = add_rung_1_trial(study, at_rung_1, **{attrs.PAUSED_AT: 1})
    promotion.queue_continuation(study, paused)
    return paused


def test_rungs_grow_by_the_reduction_factor_below_the_last_epoch():
    assert rungs(1, 3, 12) == (1, 3, 9)
    assert rungs(2, 2, 12) == (2, 4, 8)
    assert rungs(3, 3, 3) == ()  # nothing to compare before the last epoch


def test_a_trial_pauses_unless_it_ranks_in_the_top_of_its_rung(tmp_path):
    study = new_study(f"sqlite:///{tmp_path / 'asha.db'}")
    pruner = AshaPruner(min_epochs=1, reduction_factor=2, epochs=4)
    assert not pruner.prune(study, add_rung_1_trial(study, 0.5))  # the first at a rung goes on
    assert pruner.prune(study, add_rung_1_trial(study, 0.4))  # 2nd of 2: the top half is one trial
    assert not pruner.prune(study, add_rung_1_trial(study, 0.9))  # best of 3
    assert not pruner.prune(study, add_rung_1_trial(study, 0.6))  # 2nd of 4: the top half is two
    # Ties go to the earlier trial: 4th of 5
    assert pruner.prune(study, add_rung_1_trial(study, 0.5))
    running = promotion.ask_new(study)
    running.report(0.1, 3)  # not a rung (1, 2): never paused there
    assert not pruner.prune(study, study._storage.get_trial(running._trial_id))


def test_a_paused_trial_is_promoted_once_it_ranks_in_the_top_and_resumes_its_lineage(tmp_path):
    study = new_study(f"sqlite:///{tmp_path / 'asha.db'}")
    pruner = AshaPruner(min_epochs=1, reduction_factor=2, epochs=4)
    add_rung_1_trial(study, 0.9)
    paused = pause(study, 0.5)  # 2nd of 2
    assert promotion.claim_promotion(study, pruner) is None
    add_rung_1_trial(study, 0.1)
    assert promotion.claim_promotion(study, pruner) is None  # 2nd of 3: the top half is one
    add_rung_1_trial(study, 0.2)
    continuation = promotion.claim_promotion(study, pruner)  # 2nd of 4: now in the top half
    assert continuation is not None
    frozen = study._storage.get_trial(continuation._trial_id)
    assert frozen.state == TrialState.RUNNING
    assert frozen.system_attrs["fixed_params"] == paused.params
    assert frozen.user_attrs[attrs.RETRY_OF] == paused.number == attrs.first_attempt(frozen)
    assert frozen.user_attrs[attrs.PROMOTION_OF] == paused.number
    assert promotion.claim_promotion(study, pruner) is None  # promoted once


def _claim_all(url: str, start: threading.Barrier) -> list[int]:
    """One worker: its own storage and connections, claiming until nothing is promotable."""
    study = optuna.load_study(study_name="asha", storage=open_storage(url))
    pruner = AshaPruner(min_epochs=1, reduction_factor=2, epochs=4)
    start.wait()
    claimed = []
    while (trial := promotion.claim_promotion(study, pruner)) is not None:
        claimed.append(trial.user_attrs[attrs.PROMOTION_OF])
    return claimed


def test_parallel_workers_never_promote_the_same_trial(url):
    study = new_study(url)
    paused = [pause(study, 0.5 + index / 100).number for index in range(6)]
    for _ in range(6):
        add_rung_1_trial(study, 0.1)  # 12 at the rung: the six paused ones are its top half
    start = threading.Barrier(4)  # all four ask at once, through the database alone
    with ThreadPoolExecutor(4) as pool:
        claims = [pool.submit(_claim_all, url, start) for _ in range(4)]
        claimed = [number for claim in claims for number in claim.result()]
    assert sorted(claimed) == paused, Counter(claimed)
    states = Counter(trial.state for trial in study.get_trials(deepcopy=False))
    assert states[TrialState.RUNNING] == 6 and states[TrialState.WAITING] == 0


def test_a_paused_trial_that_can_no_longer_reach_the_top_is_closed_once(tmp_path):
    study = new_study(f"sqlite:///{tmp_path / 'asha.db'}")
    pruner = AshaPruner(min_epochs=1, reduction_factor=2, epochs=4)
    add_rung_1_trial(study, 0.9)
    add_rung_1_trial(study, 0.8)
    paused = pause(study, 0.5)  # 3rd of 3
    # Three trials still to come could put it in the top 3 of 6
    assert promotion.close_hopeless(study, pruner, new_trials_possible=3) == []
    # Two could not: 3rd of 5 at best, and the top half of 5 is two
    assert promotion.close_hopeless(study, pruner, new_trials_possible=2) == [paused.number]
    assert promotion.close_hopeless(study, pruner, new_trials_possible=0) == []
    closed = study.get_trials(deepcopy=False)[-1]
    assert closed.state == TrialState.PRUNED and not closed.intermediate_values
    assert "paused at epoch 1" in closed.user_attrs[attrs.PROMOTION_CLOSED]
    assert promotion.claim_promotion(study, pruner) is None


def test_a_running_trial_below_the_rung_keeps_a_paused_one_open(tmp_path):
    study = new_study(f"sqlite:///{tmp_path / 'asha.db'}")
    pruner = AshaPruner(min_epochs=1, reduction_factor=2, epochs=4)
    add_rung_1_trial(study, 0.9)
    pause(study, 0.5)
    for _ in range(2):  # running, no epoch yet: they may score below the paused trial
        promotion.ask_new(study)
    assert promotion.close_hopeless(study, pruner, new_trials_possible=0) == []
    # Once nothing continues (the epoch budget is met), every paused trial is closed
    assert len(promotion.close_hopeless(study, pruner, 0, continuing=False)) == 1


def test_a_new_trial_takes_a_queued_point_but_never_a_paused_trials_continuation(tmp_path):
    study = new_study(f"sqlite:///{tmp_path / 'asha.db'}")
    add_rung_1_trial(study, 0.9)
    pause(study, 0.5)
    study.enqueue_trial({"x": 0.25})
    point = promotion.ask_new(study)
    assert point.number == 3 and point.suggest_float("x", 0, 1) == 0.25
    fresh = promotion.ask_new(study)
    assert fresh.number == 4 and attrs.PROMOTION_OF not in fresh.user_attrs
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert [trial.number for trial in waiting] == [2]


def test_a_points_study_whose_last_point_another_worker_took_makes_no_new_trial(tmp_path):
    # The worker saw a queued point; by its ask another took it: a new trial would have no point
    # to run (it used to be made, then FAIL "no queued point left")
    study = new_study(f"sqlite:///{tmp_path / 'asha.db'}")
    study.enqueue_trial({"x": 0.25})
    [point] = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert claim(study, point) is not None  # the other worker
    assert promotion.ask_new(study, or_new=False) is None
    assert [trial.state for trial in study.get_trials()] == [TrialState.RUNNING]


def test_status_counts_a_paused_trial_apart_from_a_pruned_one(tmp_path):
    study = new_study(f"sqlite:///{tmp_path / 'asha.db'}")
    add_rung_1_trial(study, 0.9)
    paused = add_rung_1_trial(study, 0.5, **{attrs.PAUSED_AT: 1})
    continuation = promotion.queue_continuation(study, paused)
    counts = promotion.shown_counts(study.get_trials(deepcopy=False))
    assert (counts["pruned"], counts["paused"], counts["promoted"], counts["waiting"]) == (
        1,
        1,
        0,
        0,
    )
    (waiting,) = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert waiting.user_attrs[attrs.PROMOTION_OF] == paused.number
    assert waiting.number == continuation, "the number a pause's log line names"


def test_a_trial_about_to_pause_still_runs_and_no_count_goes_below_zero(tmp_path):
    """A worker records where a trial pauses just before it tells the study (on a busy SQLite
    file, seconds before): `hpsearch run --workers 2` read that moment as `pruned -1`."""
    study = new_study(f"sqlite:///{tmp_path / 'asha.db'}")
    pausing = study.ask()
    pausing.set_user_attr(attrs.PAUSED_AT, 1)
    counts = promotion.shown_counts(study.get_trials(deepcopy=False))
    assert (counts["running"], counts["pruned"], counts["paused"]) == (1, 0, 0)


def test_a_stopped_trial_queued_to_resume_counts_apart_from_a_failed_one(tmp_path):
    study = new_study(f"sqlite:///{tmp_path / 'asha.db'}")
    stopped, failed = study.ask(), study.ask()
    study.tell(stopped, state=TrialState.FAIL)
    study.tell(failed, state=TrialState.FAIL)
    stopped_frozen = study.get_trials(deepcopy=False)[stopped.number]
    retry = retries.queue_retry(study, stopped_frozen, max_retries=2, reason="stopped in epoch 2")
    assert retry == 2, "the number a stopped trial's log line names"
    trials = study.get_trials(deepcopy=False)
    assert attrs.stopped_numbers(trials) == {stopped.number}
    counts = promotion.shown_counts(trials)
    assert (counts["stopped"], counts["fail"], counts["waiting"]) == (1, 1, 1)


def test_a_promoted_lineage_stopped_before_keeps_its_retries_for_faults(tmp_path):
    # Stopped by a time limit (no fault), paused, promoted, then its worker killed: one fault of
    # max_retries=1, so it is retried; the continuation used to count the stop as a fault too
    study = new_study(f"sqlite:///{tmp_path / 'asha.db'}")
    first = study.ask()
    study.tell(first, state=TrialState.FAIL)
    retries.queue_retry(study, study.get_trials()[0], 1, "stopped (SIGTERM)", fault=False)
    retry = retries.claim_retry(study)
    retry.report(0.5, 1)
    retry.set_user_attr(attrs.PAUSED_AT, 1)
    study.tell(retry, state=TrialState.PRUNED)
    promotion.queue_continuation(study, study.get_trials()[retry.number])
    continuation = claim(study, study.get_trials(states=(TrialState.WAITING,))[0])
    study.tell(continuation, state=TrialState.FAIL)
    killed = study.get_trials()[continuation.number]
    assert retries.queue_retry(study, killed, 1, "its worker is gone") is not None


def test_a_queued_trial_naming_no_paused_trial_is_neither_promoted_nor_closed(tmp_path):
    # Another tool's queued trials: a promotion_of as text, and one naming a trial that never paused
    study = new_study(f"sqlite:///{tmp_path / 'asha.db'}")
    pruner = AshaPruner(min_epochs=1, reduction_factor=2, epochs=4)
    add_rung_1_trial(study, 0.9)
    study.enqueue_trial({}, user_attrs={attrs.PROMOTION_OF: "0"})
    study.enqueue_trial({}, user_attrs={attrs.PROMOTION_OF: 0})
    assert promotion.claim_promotion(study, pruner) is None
    assert promotion.close_hopeless(study, pruner, new_trials_possible=0) == []
    assert promotion.close_hopeless(study, pruner, 0, continuing=False) == []
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert [trial.number for trial in waiting] == [1, 2]


def test_a_trial_whose_retry_counts_another_tool_wrote_as_text_is_retried(tmp_path):
    study = new_study(f"sqlite:///{tmp_path / 'asha.db'}")
    trial = study.ask()
    trial.set_user_attr(attrs.FAULTS, "1")
    trial.set_user_attr(attrs.ATTEMPT, "1")
    study.tell(trial, state=TrialState.FAIL)
    retry = retries.queue_retry(study, study.get_trials()[0], 2, "its worker is gone")
    assert study.get_trials()[retry].user_attrs[attrs.ATTEMPT] == 1
