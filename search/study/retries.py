"""One retry policy for every way a trial can be cut short: a killed worker (its heartbeat went
stale), a signal (the worker stopped at a clean point) or a lost database (the heartbeat lapsed).

A retry is a new trial queued with the same parameters; it carries the number of the first
attempt, which names the checkpoint folder it resumes from, and the number of the attempt it
continues. The first attempt already counts against the budget, so a queued retry runs even
once the budget is met: it finishes work the study has paid for.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.attrs import (
    ATTEMPT,
    FAIL_REASON,
    FAULTS,
    PROMOTION_OF,
    QUEUED_AS,
    RETRIED_FROM,
    RETRY_OF,
    RETRY_REASON,
    first_attempt,
    stored_number,
)
from search.study.optuna_compat import claim, end_claimed, enqueue
from search.study.trial_notes import note_on_stop

__all__ = ["claim_retry", "faults_after", "first_attempt", "lineage_params", "queue_retry"]


def queue_retry(
    study: optuna.Study, trial: FrozenTrial, max_retries: int, reason: str, *, fault: bool = True
) -> int | None:
    """Queue `trial` to run again (its dashboard note then names the retry) unless it was cut
    short by a `fault` (its worker died, a bug) and its lineage has had `max_retries` of those; the
    retry's number, or None. A stop asked for (a signal: a SLURM time limit, a preemption, a
    Ctrl-C; a full disk) is no fault: a trial longer than three time limits was lost for good."""
    # A lineage queued before faults were counted apart counted every attempt as one. Counts
    # another tool wrote in another shape are none (they stopped the dead-trial sweep, and with it
    # every worker of the study, with a TypeError).
    attempts = stored_number(trial, ATTEMPT) or 0
    faults = faults_after(trial, fault)
    if faults > max_retries:
        return None
    user_attrs = {
        RETRY_OF: first_attempt(trial),
        RETRIED_FROM: trial.number,
        ATTEMPT: attempts + 1,
        FAULTS: faults,
        RETRY_REASON: f"trial {trial.number}: {reason}",
    }
    if QUEUED_AS in trial.user_attrs:
        user_attrs[QUEUED_AS] = trial.user_attrs[QUEUED_AS]
    retry = enqueue(study, lineage_params(study, trial), user_attrs)
    note_on_stop(study, trial, retry, reason)
    return retry


def faults_after(trial: FrozenTrial, fault: bool) -> int:
    """The faults of `trial`'s lineage once it ends, cut short by a `fault` or not."""
    attempts = stored_number(trial, ATTEMPT) or 0
    faults = stored_number(trial, FAULTS)
    return (attempts if faults is None else faults) + fault


def lineage_params(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """The parameters `trial`'s lineage trains with: its own, or, for an attempt stopped before its
    objective suggested them (a worker killed right after it claimed a retry), its first attempt's.
    A retry queued with none would sample new ones, train them under the lineage's number and
    find the lineage's checkpoint foreign."""
    if trial.params or first_attempt(trial) == trial.number:
        return dict(trial.params)
    first = first_attempt(trial)
    found = next((t for t in study.get_trials(deepcopy=False) if t.number == first), None)
    return dict(found.params) if found is not None else {}


def claim_retry(
    study: optuna.Study, trials: list[FrozenTrial] | None = None
) -> optuna.Trial | None:
    """Take the oldest queued retry for this worker, or None when none waits; `trials`, the
    study's trials as the caller just read them, saves a read.

    A retry runs before any new trial, whatever the budget (`optuna_compat.claim`).
    """
    if trials is None:
        trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    for trial in filter(_queued_retry, trials):
        claimed = claim(study, trial)
        if claimed is not None:
            return claimed
    return None


def close_queued_retries(study: optuna.Study, trials: list[FrozenTrial], why: str) -> list[int]:
    """End every queued retry as FAIL with `why` as its reason (the epoch budget is met: nothing
    may train, so a retry left WAITING would keep every later run waiting for it); returns the
    first attempts closed, whose checkpoints the caller removes. Each is claimed first, so a
    worker that takes it at the same moment keeps it."""
    closed = []
    for trial in filter(_queued_retry, trials):
        claimed = claim(study, trial)
        if claimed is not None and end_claimed(
            study, trial, TrialState.FAIL, {FAIL_REASON: f"{why}; it was not retried"}
        ):
            closed.append(first_attempt(trial))
    return closed


def _queued_retry(trial: FrozenTrial) -> bool:
    # A paused trial's continuation waits for its promotion (search.study.promotion)
    return (
        trial.state == TrialState.WAITING
        and RETRY_OF in trial.user_attrs
        and PROMOTION_OF not in trial.user_attrs
    )
