"""The study's compute budget, `[study] epochs_budget`: epochs actually trained over all workers.

Multi-fidelity searches are compared at equal compute, and users think in GPU time, not trials.
An epoch counts once, where it was trained: a resumed trial re-reports the epochs it restored from
its checkpoint, and those are not counted again.
"""

from __future__ import annotations

from collections.abc import Iterable

import optuna
from optuna.trial import FrozenTrial

from search.attrs import RESUMED_FROM_EPOCH, stored_number


def epochs_trained(trials: Iterable[FrozenTrial]) -> int:
    """Epochs trained by `trials`, running ones included: what each reported, less what it
    restored."""
    return sum(
        max(0, len(trial.intermediate_values) - (stored_number(trial, RESUMED_FROM_EPOCH) or 0))
        for trial in trials
    )


def epochs_budget_met(
    study: optuna.Study, epochs_budget: int | None, trials: list[FrozenTrial] | None = None
) -> bool:
    """The one place a worker asks whether the study has trained its budget of epochs, before
    every trial (`trials`: the worker's read of the study, if it has one)."""
    if epochs_budget is None:
        return False
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    return epochs_trained(trials) >= epochs_budget
