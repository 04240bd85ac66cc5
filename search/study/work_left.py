"""Whether a study has anything left for a worker to run: asked before workers are started, so a
study run to its end says so once rather than start workers that each find nothing."""

from __future__ import annotations

from typing import NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import attrs
from search.study import orphans
from search.study.epochs_budget import epochs_budget_met, epochs_trained
from search.study.recorded import budget
from search.studyfile import StudyConfig

_UNFINISHED = (TrialState.RUNNING, TrialState.WAITING)


class NothingLeft(NamedTuple):
    why: str  # follows "study 'NAME' has nothing left to run: "
    remedy: str  # what makes it run more


def nothing_left(
    study: optuna.Study, config: StudyConfig, trials: list[FrozenTrial] | None = None
) -> NothingLeft | None:
    """Why no worker would find anything to run, or None: the study trained its epochs_budget, or
    its trial budget is spent with no trial running (which may die and be retried) or queued (a
    retry, a paused trial's continuation, which the budget never holds back) and none owed its
    follow-up (its worker killed between the trial's end and the queuing, `orphans.owed`).
    `trials`: the study's, as the caller just read them, which saves a read."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    epochs = config.study.epochs_budget
    if epochs_budget_met(study, epochs, trials):  # nothing starts, retries or promotes then
        return NothingLeft(
            f"it trained its epochs_budget of {epochs} epochs ({epochs_trained(trials)} trained)",
            "give a new [study] name for a new search",
        )
    if has_unfinished(trials) or orphans.owed(trials, config.heartbeat.max_retries):
        return None
    total, spent = budget(study, config.study.trials), attrs.budget_spent(trials)
    if spent < total:
        return None
    return NothingLeft(
        f"{spent} of its {total} trials are finished and none is running or queued",
        # Above what it spent: workers starting at once in an outage may pass the budget by one
        f"give --trials N (above {spent}) to raise its budget, or a new [study] name for a new "
        "search",
    )


def has_unfinished(trials: list[FrozenTrial]) -> bool:
    """A trial running or queued: one a worker may yet run, fail as dead, or close (a retry queued
    when the epochs budget was met), so the study still has a worker's tidying to do."""
    return any(trial.state in _UNFINISHED for trial in trials)
