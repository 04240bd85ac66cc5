"""Factors and parameters that took one value among the trials a report draws.

A figure of a factor the trials never varied (a space or every point fixing momentum, one
optimizer, a study of one trial) draws one vertical line, a legend of one optimizer, a parallel
axis of one value, and PED-ANOVA even ranks a parameter that never changed (35% of the
importance, beside one that decided every value): a reader takes each for a finding. The report
leaves such a factor out of its figures and says once what it was. No Plotly here: reading a
study (`search.trials`) comes through `report_data`, and loads none.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.attrs import format_setting


def one_value_text(name: str, value: Any, trials: str) -> str:
    """`momentum was 0.9 in every trial`; `trials` names which (`trial that sets it`)."""
    return f"{name} was {format_setting(name, value)} in every {trials}"


def single_values(trials: list[FrozenTrial]) -> dict[str, Any]:
    """Each parameter the trials sample that took one value in every trial that samples it (a
    conditional one, momentum say, is judged by the trials that have it), with that value."""
    seen = _values_by_param(trials)
    return {name: next(iter(values.values())) for name, values in seen.items() if len(values) == 1}


def varied_params(trials: list[FrozenTrial]) -> list[str]:
    """The parameters that take more than one value among `trials`, in the order first seen."""
    return [name for name, values in _values_by_param(trials).items() if len(values) > 1]


def parallel_params(trials: list[FrozenTrial]) -> tuple[list[str], list[str]]:
    """The varied parameters a parallel-coordinates view draws, and those it leaves out: one only
    some trials sample (momentum: SGD's) would put the others at a "None" tick at the bottom of
    its numeric axis, where they read as its lowest value."""
    varied = varied_params(trials)
    shared = [name for name in varied if all(name in trial.params for trial in trials)]
    return shared, [name for name in varied if name not in shared]


def _conditional(trials: list[FrozenTrial], name: str) -> str:
    return "" if all(name in trial.params for trial in trials) else " that samples it"


def _values_by_param(trials: list[FrozenTrial]) -> dict[str, dict[str, Any]]:
    # By repr: True, 1 and 1.0 are one value to a set, and three choices to a sampler
    seen: dict[str, dict[str, Any]] = {}
    for trial in trials:
        for name, value in trial.params.items():
            seen.setdefault(name, {})[repr(value)] = value
    return seen


def left_out_params(study: optuna.Study) -> str:
    """The line under a study's heading naming the parameters its views leave out, or "" where
    none is (or none varied, which each view's note says)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    single = single_values(complete)
    if not single or not varied_params(complete):
        return ""
    texts = [
        one_value_text(name, value, "complete trial" + _conditional(complete, name))
        for name, value in single.items()
    ]
    return f"{'; '.join(texts)}: not drawn in the slice, parallel coordinates or importances."
