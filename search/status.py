"""`hpsearch status`: the studies in a storage and where their trials stand."""

from __future__ import annotations

from collections import Counter
from typing import Any

import optuna
from optuna.trial import TrialState

from search.study import find_study


def study_status(storage: optuna.storages.BaseStorage, name: str | None = None) -> list[dict[str, Any]]:
    names = optuna.get_all_study_names(storage) if name is None else [name]
    return [_one_study(find_study(storage, study_name)) for study_name in names]


def _one_study(study: optuna.Study) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    states = Counter(trial.state.name.lower() for trial in trials)
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    best = max(complete, key=lambda trial: trial.value) if complete else None
    return {"study": study.study_name, "trials": len(trials),
            **{state.name.lower(): states.get(state.name.lower(), 0) for state in TrialState},
            "best_value": best.value if best else None, "best_trial": best.number if best else None,
            "best_params": best.params if best else None}


def format_status(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no studies in this storage"
    lines = [f"{'study':<28} {'trials':>6} {'done':>5} {'pruned':>6} {'failed':>6} {'running':>7}  best"]
    for row in rows:
        best = f"{row['best_value']:.2%} (trial {row['best_trial']}: {row['best_params']})" if row["best_trial"] \
            is not None else "-"
        lines.append(f"{row['study']:<28} {row['trials']:>6} {row['complete']:>5} {row['pruned']:>6} "
                     f"{row['fail']:>6} {row['running']:>7}  {best}")
    return "\n".join(lines)
