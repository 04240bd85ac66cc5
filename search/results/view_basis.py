"""How many trials each of Optuna's views rests on, in the words the report puts under the view.

Optuna draws most views from the complete trials alone, the intermediate values from those that
reported an epoch, the timeline from all: a reader of a view of 2 trials should not take it for
one of 200. The counts follow Optuna's own filters (optuna/visualization/_*.py).
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from search.results.report_data import CONTOUR_PARAMS, OPTUNA_VIEWS, SETTLED_IMPORTANCE
from search.study.promotion import never_ran

# The states plot_intermediate_values draws
REPORTING = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def view_basis(study: optuna.Study, view: str) -> str:
    """`Rests on 7 of the study's 12 trials: the complete ones.`, with a caution where the view
    is drawn but its number of trials is still small."""
    if view not in OPTUNA_VIEWS:
        raise ValueError(f"view must be one of {', '.join(OPTUNA_VIEWS)}, but got {view=}")
    # A queued or closed continuation of a paused trial never trained: no trial of its own
    trials = [trial for trial in study.get_trials(deepcopy=False) if not never_ran(trial)]
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    if view == "timeline":
        return f"Rests on every trial of the study: {len(trials)}."
    if view == "intermediate":
        reporting = [t for t in trials if t.state in REPORTING and t.intermediate_values]
        return _share(
            len(reporting), len(trials), "those that reported an epoch (complete, pruned, running)"
        )
    if view in CONTOUR_PARAMS:
        first, second = CONTOUR_PARAMS[view]
        both = [t for t in complete if first in t.params and second in t.params]
        return _share(len(both), len(trials), f"the complete ones that sample {first} and {second}")
    text = _share(len(complete), len(trials), "the complete ones")
    if view in ("importance", "fanova") and len(complete) < SETTLED_IMPORTANCE:
        text += (
            f" Importances are rough below {SETTLED_IMPORTANCE} complete trials: "
            "another run of the same study may rank the parameters otherwise."
        )
    return text


def _share(count: int, total: int, which: str) -> str:
    return f"Rests on {count} of the study's {_trials(total)}: {which}."


def _trials(count: int) -> str:
    return f"{count} trial" if count == 1 else f"{count} trials"
