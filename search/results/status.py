"""`hpsearch status`: the studies in a storage, where their trials stand, and the best so far."""

from __future__ import annotations

from typing import Any

import optuna

from search import attrs
from search.study.create import find_study


def study_status(
    storage: optuna.storages.BaseStorage, name: str | None = None
) -> list[dict[str, Any]]:
    names = optuna.get_all_study_names(storage) if name is None else [name]
    return [_one_study(find_study(storage, study_name)) for study_name in names]


def _one_study(study: optuna.Study) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    best = attrs.best_trial(trials)
    return {
        "study": study.study_name,
        "trials": len(trials),
        **attrs.state_counts(trials),
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": best.params
        if best
        else None,  # what Optuna sampled; best_config is what trained
        "best_config": attrs.trial_config(best) if best else None,
    }


def format_status(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no studies in this storage"
    lines = [
        f"{'study':<28} {'trials':>6} {'done':>5} {'pruned':>6} {'failed':>6} {'running':>7}  best"
    ]
    for row in rows:
        best = (
            f"{row['best_value']:.2%} (trial {row['best_trial']})"
            if row["best_trial"] is not None
            else "-"
        )
        lines.append(
            f"{row['study']:<28} {row['trials']:>6} {row['complete']:>5} {row['pruned']:>6} "
            f"{row['fail']:>6} {row['running']:>7}  {best}"
        )
    for row in rows:  # a whole configuration does not fit a table column
        if row["best_config"] is not None:
            lines.append(
                f"best of {row['study']}: trial {row['best_trial']}, "
                f"{attrs.settings_text(row['best_config'])}"
            )
    return "\n".join(lines)
