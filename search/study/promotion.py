"""Asynchronous successive halving with promotion (ASHA; Li et al., MLSys 2020) over Optuna.

Rungs sit at `min_epochs * reduction_factor**k` epochs, below the study's epochs. A trial that
reaches a rung goes on if it ranks in the top 1/reduction_factor of the trials seen there
(`AshaPruner`); otherwise it *pauses*: it ends PRUNED with `paused_at_epoch` and its checkpoint
kept, and leaves a continuation queued as a WAITING trial (`promotion_of`, `retry_of`). Optuna's
pruners can only stop a trial; pausing lets a trial that looked weak early come back once the
trials that passed it at its rung turn out worse than it.

Whenever a worker asks for work, a paused trial that now ranks in the top 1/reduction_factor of
its rung is promoted first: the worker claims its continuation (WAITING to RUNNING, which the
storage lets one worker alone do), which resumes from the checkpoint like a retry. A paused trial
that can no longer reach the top of its rung, however the trials still to come score, is closed:
its continuation ends PRUNED with `promotion_closed`, and the worker that closed it removes the
checkpoint. `study.ask()` would pop a waiting continuation as a new trial, so workers ask with
`ask_new` instead.

Trials are compared by lineage: a trial, its continuations and its retries share the first
attempt's number and report the same epochs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeGuard

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.attrs import (
    ATTEMPT,
    CONTINUES_FROM_EPOCH,
    DUPLICATE_OF,
    FAULTS,
    FINISHED,
    PAUSED_AT,
    PROMOTION_CLOSED,
    PROMOTION_OF,
    QUEUED_AS,
    RETRIED_FROM,
    RETRY_OF,
    first_attempt,
    is_paused,
    stopped_numbers,
    stored_number,
)
from search.study.optuna_compat import claim, end_claimed, enqueue, new_trial
from search.study.trial_notes import note_on_close, note_on_pause


def rungs(min_epochs: int, reduction_factor: int, epochs: int) -> tuple[int, ...]:
    """The epochs at which a trial is compared: min_epochs * reduction_factor**k below `epochs`
    (a trial that reaches `epochs` is complete, not compared)."""
    found = []
    rung = min_epochs
    while rung < epochs:
        found.append(rung)
        rung *= reduction_factor
    return tuple(found)


class AshaPruner(optuna.pruners.BasePruner):
    """`prune` answers True for a trial to *pause* at a rung: the objective raises
    PauseAfterEpoch instead of TrialPruned for this pruner (`pauses`)."""

    def __init__(self, min_epochs: int, reduction_factor: int, epochs: int):
        self.reduction_factor = reduction_factor
        self.rungs = rungs(min_epochs, reduction_factor, epochs)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        rung = trial.last_step
        if rung not in self.rungs:
            return False
        values = rung_values(study.get_trials(deepcopy=False), rung)
        # Its own value as just reported, should the study's read predate it (a cache that lags)
        values.setdefault(first_attempt(trial), trial.intermediate_values[rung])
        return not in_top(values, first_attempt(trial), len(values), self.reduction_factor)


def pauses(pruner: optuna.pruners.BasePruner) -> TypeGuard[AshaPruner]:
    """Whether the study's pruner pauses trials (and keeps their checkpoints) instead of
    stopping them."""
    return isinstance(pruner, AshaPruner)


def rung_values(trials: Iterable[FrozenTrial], rung: int) -> dict[int, float]:
    """Val top-1 at epoch `rung` of every lineage that reached it, by first attempt."""
    values: dict[int, float] = {}
    for trial in trials:
        if trial.state != TrialState.WAITING and rung in trial.intermediate_values:
            values.setdefault(first_attempt(trial), trial.intermediate_values[rung])
    return values


def in_top(values: dict[int, float], lineage: int, seen: int, reduction_factor: int) -> bool:
    """Whether `lineage` ranks in the top 1/reduction_factor of `seen` lineages (at least the
    first: the first trial at a rung goes on); ties go to the earlier lineage."""
    mine = values[lineage]
    ahead = sum(1 for other, value in values.items() if (-value, other) < (-mine, lineage))
    return ahead < max(1, seen // reduction_factor)


def is_continuation_queued(trial: FrozenTrial) -> bool:
    """A paused trial's continuation, waiting to be promoted or closed."""
    return trial.state == TrialState.WAITING and PROMOTION_OF in trial.user_attrs


def never_ran(trial: FrozenTrial) -> bool:
    """A paused trial's continuation that waits, or was closed without running, or a follow-up
    queued twice and closed so: no trial of its own, so status and reports count it with the
    trial it continues."""
    closed = PROMOTION_CLOSED in trial.user_attrs or DUPLICATE_OF in trial.user_attrs
    return closed or is_continuation_queued(trial)


def ran_to_an_end(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that trained and ended (complete, pruned, paused, failed, stopped): not the
    continuations that never ran."""
    return [trial for trial in trials if trial.state in FINISHED and not never_ran(trial)]


def promoted(trials: Iterable[FrozenTrial]) -> set[int]:
    """The numbers of the paused trials whose continuation ran (or runs): promoted."""
    ran = (stored_number(trial, PROMOTION_OF) for trial in trials if not never_ran(trial))
    return {number for number in ran if number is not None}


def shown_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials per state as status, reports and the progress line show them: Optuna's states, with
    a paused trial apart from a pruned one (`paused`: not promoted, or not yet; `promoted`:
    paused, then continued), a stopped trial apart from a failed one (`stopped`: cut short and
    queued to resume, `attrs.stopped_numbers`), and the queued or closed continuations left out,
    since they never trained."""
    ran = [trial for trial in trials if not never_ran(trial)]
    counts = {state.name.lower(): 0 for state in TrialState}
    for trial in ran:
        counts[trial.state.name.lower()] += 1
    continued = promoted(trials)
    paused = [trial for trial in ran if is_paused(trial)]
    counts["promoted"] = sum(1 for trial in paused if trial.number in continued)
    counts["paused"] = len(paused) - counts["promoted"]
    counts["pruned"] -= len(paused)
    counts["stopped"] = len(stopped_numbers(trials))
    counts["fail"] -= counts["stopped"]
    return counts


def queue_continuation(study: optuna.Study, paused: FrozenTrial) -> int:
    """Queue what continues `paused` once promoted: its parameters, its first attempt's number
    (whose folder holds the checkpoint) and its retry count, as a retry carries them, and the
    epoch it paused at, which its checkpoint must restore; the paused trial's dashboard note says
    so. Returns the continuation's number. Its faults go along: without them a fault of the
    continuation would count every earlier attempt, stops asked for included, against
    max_retries (search.study.retries)."""
    user_attrs = {
        RETRY_OF: first_attempt(paused),
        RETRIED_FROM: paused.number,
        PROMOTION_OF: paused.number,
        CONTINUES_FROM_EPOCH: paused.user_attrs[PAUSED_AT],
    }
    for key in (ATTEMPT, FAULTS, QUEUED_AS):
        if key in paused.user_attrs:
            user_attrs[key] = paused.user_attrs[key]
    continuation = enqueue(study, paused.params, user_attrs)
    reduction_factor = study.pruner.reduction_factor if pauses(study.pruner) else None
    note_on_pause(study, paused, continuation, reduction_factor)
    return continuation


def claim_promotion(study: optuna.Study, pruner: AshaPruner) -> optuna.Trial | None:
    """Promote the paused trial that ranks best at the highest rung where one ranks in the top,
    as ASHA does; None when no paused trial ranks there."""
    trials = study.get_trials(deepcopy=False)
    candidates = []
    for queued in _queued_continuations(trials):
        rung = _paused_rung(trials, queued)
        if rung is None:
            continue
        values = rung_values(trials, rung)
        lineage = first_attempt(queued)
        if lineage in values and in_top(values, lineage, len(values), pruner.reduction_factor):
            candidates.append((-rung, -values[lineage], queued.number, queued))
    for *_, queued in sorted(candidates, key=lambda candidate: candidate[:3]):
        claimed = claim(study, queued)
        if claimed is not None:
            return claimed
    return None


def close_hopeless(
    study: optuna.Study, pruner: AshaPruner, new_trials_possible: int, *, continuing: bool = True
) -> list[int]:
    """Close every queued continuation whose paused trial can no longer be promoted; returns the
    first attempts closed here, whose checkpoints the caller removes.

    While `continuing` (the epoch budget is not met), that is one that cannot rank in the top of
    its rung even if every lineage still able to reach the rung scores below it: a running one,
    one with a queued retry or continuation, or one of the `new_trials_possible` new trials the
    trial budget allows. Ranks only fall as lineages arrive, so a closed trial would never have
    been promoted. Closing one may close others (it will not reach a higher rung), hence passes
    until none closes. Once nothing continues, every queued continuation is closed.
    """
    closed: list[int] = []
    while True:
        trials = study.get_trials(deepcopy=False)
        this_pass = [
            first_attempt(queued)
            for queued in _queued_continuations(trials)
            if (rung := _paused_rung(trials, queued)) is not None
            and not (
                continuing and _may_be_promoted(trials, queued, rung, pruner, new_trials_possible)
            )
            and _close(study, queued, rung, continuing)
        ]
        closed += this_pass
        if not this_pass:
            return closed


def _may_be_promoted(
    trials: list[FrozenTrial],
    queued: FrozenTrial,
    rung: int,
    pruner: AshaPruner,
    new_trials_possible: int,
) -> bool:
    values = rung_values(trials, rung)
    most_seen = len(values) + _may_reach(trials, values) + new_trials_possible
    return in_top(values, first_attempt(queued), most_seen, pruner.reduction_factor)


def ask_new(study: optuna.Study, *, or_new: bool = True) -> optuna.Trial | None:
    """`study.ask()` without taking a queued continuation: the oldest other queued trial (a point,
    a warm start), else a new one, or None unless `or_new` (a study of fixed points, whose last
    point another worker took since this one looked: a new trial would have none to run)."""
    for queued in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        claimed = None if PROMOTION_OF in queued.user_attrs else claim(study, queued)
        if claimed is not None:
            return claimed
    return new_trial(study) if or_new else None


def _queued_continuations(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [trial for trial in trials if is_continuation_queued(trial)]


def _paused_rung(trials: list[FrozenTrial], queued: FrozenTrial) -> int | None:
    """The rung the queued continuation's paused trial paused at; None when the storage holds no
    such paused trial (another tool queued a trial with a `promotion_of` of its own, or copied one
    into a study without its paused trial): such a trial is neither promoted nor closed, where
    reading it as ours stopped every worker of the study with a traceback."""
    number = stored_number(queued, PROMOTION_OF)
    paused = next((trial for trial in trials if trial.number == number), None)
    rung = None if paused is None or not is_paused(paused) else stored_number(paused, PAUSED_AT)
    return rung if rung is not None and rung >= 1 else None


def _may_reach(trials: list[FrozenTrial], values: dict[int, float]) -> int:
    """Lineages not yet at the rung that may still get there: running or queued to run."""
    active = (TrialState.RUNNING, TrialState.WAITING)
    return len(
        {
            first_attempt(trial)
            for trial in trials
            if trial.state in active and first_attempt(trial) not in values
        }
    )


def _close(study: optuna.Study, queued: FrozenTrial, rung: int, continuing: bool) -> bool:
    # Claimed first, so a worker that promotes it at the same moment cannot have it closed under it
    if claim(study, queued) is None:
        return False
    why = (
        "can no longer rank in the top of its rung"
        if continuing
        else "was not promoted before the epoch budget was met"
    )
    closed = (
        f"trial {queued.user_attrs[PROMOTION_OF]}, paused at epoch {rung}, {why}; "
        "its checkpoint was removed"
    )
    if end_claimed(study, queued, TrialState.PRUNED, {PROMOTION_CLOSED: closed}):
        note_on_close(study, queued, rung, why)
    return True
