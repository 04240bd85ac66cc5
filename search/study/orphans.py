"""Lineages left without their follow-up, found and continued.

A worker records how a trial ended, then queues what continues it: a retry of a trial stopped or
found dead, a paused trial's continuation. Killed between the two writes (SIGKILL, a machine
lost), it left the trial ended and nothing to resume it: the lineage was lost for good, its
checkpoint with it. So the end is preceded by a mark that a follow-up is due (attrs.RETRY_DUE; a
paused trial's PAUSED_AT), and a worker looking for work finds every *orphan*: ended, marked, no
trial continuing it (RETRIED_FROM), and its recorder dead, gone from this machine or silent since
the end for longer than the heartbeat's grace, which a live recorder never takes between two
writes. It queues the follow-up the recorder would have, under the same max_retries.

Two follow-ups of one trial would train one checkpoint at once, so each is queued under the
study's budget lock, waited for through an outage, once the study, read under it, shows none: by
the sweep, and by the recorder itself (`queue_once`), which may have stalled past the grace between
its writes (SIGSTOP, an outage waited out) while a sweeper took it for dead. A second one that
slips past the lock (behind the gRPC proxy, which has none; a lock lost with its server mid-hold)
is closed unrun before a worker takes it (`close_duplicates`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.attrs import (
    DUPLICATE_OF,
    FAIL_REASON,
    HEARTBEAT,
    PROMOTION_OF,
    RETRIED_FROM,
    RETRY_DUE,
    WORKER,
    is_paused,
    stored_number,
)
from search.study import promotion, retries
from search.study.budget_lock import BudgetLock
from search.study.optuna_compat import claim, end_claimed
from search.study.trial_notes import note_on_duplicate


class Duplicate(NamedTuple):
    trial: FrozenTrial  # a queued follow-up, closed without running
    continued: int  # the trial it was queued to continue
    first: int  # the follow-up of that trial that goes on: the one a worker took, else the first


class Orphan(NamedTuple):
    trial: FrozenTrial  # ended, due a follow-up it did not get
    kind: str  # what it was due: "retry" or "continuation"
    follow_up: int | None  # the trial queued for it now; None: out of retries, FAIL for good


def retry_due(reason: str, fault: bool, max_retries: int, by: dict[str, Any]) -> dict[str, Any]:
    """The RETRY_DUE mark: what `retries.queue_retry` takes (`reason` follows "stopped", or a dead
    worker's; whether it is a `fault`; the `max_retries` its recorder applies, which a sweep
    applies too: a worker run with more must not revive lineages ended for good), the worker `by`
    whose death leaves it to a sweep, and when (`at`, seconds since the epoch: Optuna stamps an
    end in its machine's local time, which another machine's clock may read hours off)."""
    mark = {"reason": reason, "fault": fault, "max_retries": max_retries, "by": by}
    return {**mark, "at": time.time()}


def stop_marks(
    trial: optuna.Trial, reason: str, fault: bool, max_retries: int, by: dict[str, Any]
) -> dict[str, Any]:
    """What a worker records on a trial it stopped before it ends it FAIL: the retry due, and the
    `reason` as its fail reason unless it has one (a bug's or a full disk's own is kept)."""
    marks: dict[str, Any] = {RETRY_DUE: retry_due(reason, fault, max_retries, by)}
    if FAIL_REASON not in trial.user_attrs:
        marks[FAIL_REASON] = reason
    return marks


def queue_retry_once(
    study: optuna.Study,
    lock: BudgetLock | None,
    ended: FrozenTrial,
    max_retries: int,
    reason: str,
    *,
    fault: bool = True,
) -> int | None:
    """`retries.queue_retry`, by the worker that ended the trial, unless a sweep queued it."""
    queue = partial(retries.queue_retry, study, ended, max_retries, reason, fault=fault)
    return queue_once(study, lock, ended, queue)


def queue_continuation_once(
    study: optuna.Study, lock: BudgetLock | None, paused: FrozenTrial
) -> int | None:
    """`promotion.queue_continuation`, by the worker that paused the trial, unless a sweep did."""
    return queue_once(study, lock, paused, partial(promotion.queue_continuation, study, paused))


def queue_once(
    study: optuna.Study,
    lock: BudgetLock | None,
    ended: FrozenTrial,
    queue: Callable[[], int | None],
) -> int | None:
    """The recorder's own follow-up: `queue()` unless a trial continues `ended` already (a
    sweeper's, while this worker stalled), whose number is returned then."""
    with lock.held(through_outages=True) if lock is not None else contextlib.nullcontext():
        queued = _follow_ups(study.get_trials(deepcopy=False)).get(ended.number)
        return queue() if queued is None else queued


def recover(
    study: optuna.Study,
    trials: list[FrozenTrial],
    grace_seconds: float,
    max_retries: int,
    lock: BudgetLock,
    recorder_gone: Callable[[Any], bool],
) -> list[Orphan]:
    """Queue the follow-up of every orphan: those of `trials` (the study as the caller just read
    it, which costs nothing more when there are none) found again in a read under the lock.
    Returned too: orphans out of retries, FAIL for good, whose files the caller removes as the
    recorder would have (at every sweep: a trial ended can record nothing more)."""
    found = orphans(trials, grace_seconds, recorder_gone)
    lost = [Orphan(trial, "retry", None) for trial in found if _out_of_retries(trial, max_retries)]
    if len(lost) == len(found):
        return lost
    with lock.held(through_outages=True):
        trials = study.get_trials(deepcopy=False)
        due = [
            trial
            for trial in orphans(trials, grace_seconds, recorder_gone)
            if not _out_of_retries(trial, max_retries)
        ]
        return lost + [_queue(study, trial, max_retries) for trial in due]


def orphans(
    trials: list[FrozenTrial], grace_seconds: float, recorder_gone: Callable[[Any], bool]
) -> list[FrozenTrial]:
    """The trials due a follow-up that none continues and whose recorder is dead."""
    long_ago = time.time() - grace_seconds
    return [
        trial
        for trial in _lacking_follow_up(trials)
        if _recorder_dead(trial, long_ago, recorder_gone)
    ]


def owed(trials: list[FrozenTrial], max_retries: int) -> list[FrozenTrial]:
    """The trials due a follow-up that none continues yet, within their retries: whether their
    recorder queues it in a moment or a sweep once it is gone, a worker will run it."""
    return [
        trial for trial in _lacking_follow_up(trials) if not _out_of_retries(trial, max_retries)
    ]


def _lacking_follow_up(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials due a follow-up that no trial continues."""
    continued = _follow_ups(trials)
    return [trial for trial in trials if _due(trial) and trial.number not in continued]


def close_duplicates(
    study: optuna.Study, trials: list[FrozenTrial], lock: BudgetLock
) -> list[Duplicate]:
    """Close every queued follow-up of a trial that another continues (`trials`: the study as just
    read, which costs nothing more when none is queued twice): the one a worker took, else the first
    queued, goes on. Found again in a read under the lock, so that two sweepers never close one
    each; each closed is claimed, then ended FAIL marked DUPLICATE_OF, which status and reports
    leave out as never run. The ones closed."""
    if not _duplicates(trials):
        return []
    with lock.held(through_outages=True):
        found = _duplicates(study.get_trials(deepcopy=False))
        return [duplicate for duplicate in found if _close_duplicate(study, duplicate)]


def _duplicates(trials: list[FrozenTrial]) -> list[Duplicate]:
    follow_ups: dict[int, list[FrozenTrial]] = {}
    for trial in sorted(trials, key=lambda trial: trial.number):
        continued = _continued(trial)
        if continued is not None and DUPLICATE_OF not in trial.user_attrs:
            follow_ups.setdefault(continued, []).append(trial)
    found = []
    for continued, queued in follow_ups.items():
        # Taken: finished, or running under a worker (a RUNNING trial without one is being closed
        # by a sweeper behind the gRPC proxy, which has no lock)
        taken = [
            trial for trial in queued if trial.state.is_finished() or WORKER in trial.user_attrs
        ]
        first = (taken or queued)[0].number
        found += [
            Duplicate(trial, continued, first)
            for trial in queued
            if trial.state == TrialState.WAITING and trial.number != first
        ]
    return found


def _close_duplicate(study: optuna.Study, duplicate: Duplicate) -> bool:
    trial, continued, first = duplicate
    if claim(study, trial) is None:
        return False
    reason = f"not run: trial {first} continues trial {continued}, queued for it too"
    if not end_claimed(study, trial, TrialState.FAIL, {DUPLICATE_OF: first, FAIL_REASON: reason}):
        return False
    note_on_duplicate(study, trial, continued, first)
    return True


def kind_due(trial: FrozenTrial) -> str:
    """What continues a trial due a follow-up: a paused trial's continuation, else a retry."""
    return "retry" if trial.state == TrialState.FAIL else "continuation"


def _follow_ups(trials: Iterable[FrozenTrial]) -> dict[int, int]:
    """The trials that continue another, by the number of the trial each continues: the first
    queued, where two were."""
    found: dict[int, int] = {}
    for trial in sorted(trials, key=lambda trial: trial.number):
        continued = _continued(trial)
        if continued is not None:
            found.setdefault(continued, trial.number)
    return found


def _continued(trial: FrozenTrial) -> int | None:
    """The trial that `trial` continues, a retry or a paused trial's continuation; None if none."""
    for key in (RETRIED_FROM, PROMOTION_OF):
        continued = stored_number(trial, key)
        if continued is not None:
            return continued
    return None


def _due(trial: FrozenTrial) -> bool:
    marked = trial.state == TrialState.FAIL and isinstance(trial.user_attrs.get(RETRY_DUE), dict)
    return marked or is_paused(trial)


def _recorder_dead(
    trial: FrozenTrial, long_ago: float, recorder_gone: Callable[[Any], bool]
) -> bool:
    if marked_at(trial) < long_ago:
        return True
    # A retry's mark names who wrote it (a sweeper, for a dead worker's trial); a pause is its own
    # worker's
    mark = trial.user_attrs.get(RETRY_DUE)
    recorder = mark.get("by") if isinstance(mark, dict) else trial.user_attrs.get(WORKER)
    return recorder_gone(recorder)


def marked_at(trial: FrozenTrial) -> float:
    """When the trial was marked due a follow-up, in seconds since the epoch: its mark's time, else
    (a pause, a mark of an hpsearch before `at`) its last heartbeat, which came at most an interval
    before, else its end as Optuna stamped it."""
    mark = trial.user_attrs.get(RETRY_DUE)
    beat = trial.system_attrs.get(HEARTBEAT)
    for stamp in (mark.get("at") if isinstance(mark, dict) else None, beat):
        if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
            return float(stamp)
    ended = trial.datetime_complete
    return ended.timestamp() if ended is not None else 0.0


class _RetryTerms(NamedTuple):
    reason: str
    fault: bool
    max_retries: int


def _retry_terms(trial: FrozenTrial, max_retries: int) -> _RetryTerms:
    """A RETRY_DUE mark's terms; what another tool wrote in another shape reads as the trial's
    fail reason, a fault, and the sweeping worker's `max_retries`."""
    mark = trial.user_attrs[RETRY_DUE]
    reason, fault, recorded = (mark.get(key) for key in ("reason", "fault", "max_retries"))
    if not isinstance(reason, str):
        reason = str(trial.user_attrs.get(FAIL_REASON, "cut short"))
    if isinstance(recorded, int) and not isinstance(recorded, bool):
        max_retries = recorded
    return _RetryTerms(reason, fault if isinstance(fault, bool) else True, max_retries)


def _out_of_retries(trial: FrozenTrial, max_retries: int) -> bool:
    if trial.state != TrialState.FAIL:
        return False  # a paused trial's continuation spends no retry
    terms = _retry_terms(trial, max_retries)
    return retries.faults_after(trial, terms.fault) > terms.max_retries


def _queue(study: optuna.Study, trial: FrozenTrial, max_retries: int) -> Orphan:
    if kind_due(trial) == "continuation":
        return Orphan(trial, "continuation", promotion.queue_continuation(study, trial))
    reason, fault, max_retries = _retry_terms(trial, max_retries)
    retry = retries.queue_retry(study, trial, max_retries, reason, fault=fault)
    return Orphan(trial, "retry", retry)
