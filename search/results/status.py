"""`hpsearch status`: the studies in a storage, where their trials stand, and the best so far."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import attrs
from search.run.liveness import death, describe, last_beat
from search.study.promotion import never_ran, shown_counts
from search.study.recorded import budget, config_document, find_study, unreadable
from search.studyfile import HeartbeatSettings


class StorageStatus(NamedTuple):
    rows: list[dict[str, Any]]  # a row per study hpsearch reads
    skipped: list[str]  # a line per study it cannot, and why (several objectives, minimizing)


def study_status(
    storage: optuna.storages.BaseStorage, name: str | None = None
) -> list[dict[str, Any]]:
    """A row for the study `name` (an error if hpsearch cannot read it), or for every study it
    can read."""
    if name is not None:
        return [_one_study(find_study(storage, name))]
    return storage_status(storage).rows


def storage_status(storage: optuna.storages.BaseStorage) -> StorageStatus:
    """Every study in the storage: a row for each hpsearch reads, a line for each it skips; another
    tool's study beside ours is no reason to show none."""
    rows, skipped = [], []
    for name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        reason = unreadable(study)
        if reason is None:
            rows.append(_one_study(study))
        else:
            skipped.append(f"{reason}: skipped")
    return StorageStatus(rows, skipped)


def _one_study(study: optuna.Study) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    best = attrs.best_trial(trials)
    running = [trial for trial in trials if trial.state == TrialState.RUNNING]
    grace = _grace_seconds(study) if running else 0.0
    return {
        "study": study.study_name,
        "trials": sum(1 for trial in trials if not never_ran(trial)),
        "budget": budget(study, default=0) or None,  # None: a study of an older hpsearch
        "budget_spent": attrs.budget_spent(trials),
        # asha: a paused trial apart from a pruned one, its queued continuation no trial; a
        # stopped trial (queued to resume) apart from a failed one
        **shown_counts(trials),
        # Attempts that continue a stopped trial, in any state; a waiting one runs before new trials
        "retries": sum(
            1
            for trial in trials
            if attrs.is_retry(trial)
            and attrs.PROMOTION_OF not in trial.user_attrs
            and not never_ran(trial)  # a follow-up queued twice, closed unrun
        ),
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": best.params
        if best
        else None,  # what Optuna sampled; best_config is what trained
        "best_config": attrs.trial_config(best) if best else None,
        "running_trials": [_running(trial, grace) for trial in running],
    }


def _running(trial: FrozenTrial, grace_seconds: float) -> dict[str, Any]:
    """Who runs a RUNNING trial, how far it got, how long ago its worker last beat, and why that
    worker counts as dead, if it does (`dead`: the next worker to look resumes the trial)."""
    config = trial.user_attrs.get(attrs.CONFIG)
    now = time.time()
    return {
        "trial": trial.number,
        "worker": trial.user_attrs.get(attrs.WORKER),
        "epochs_done": attrs.epochs_done(trial),
        "epochs": config.get("epochs") if isinstance(config, dict) else None,
        "heartbeat_age_seconds": round(now - last_beat(trial), 1),
        "dead": death(trial, now, grace_seconds),
    }


def _grace_seconds(study: optuna.Study) -> float:
    """The silence after which the study's workers count a worker as dead: as it was created."""
    document = config_document(study) or {}
    heartbeat = document.get("heartbeat")
    grace: Any = heartbeat.get("grace_seconds") if isinstance(heartbeat, dict) else None
    valid = isinstance(grace, (int, float)) and not isinstance(grace, bool) and grace > 0
    return float(grace) if valid else float(HeartbeatSettings().grace_seconds)


def format_status(rows: list[dict[str, Any]]) -> str:
    if not rows:
        # Not "no studies": the storage may hold studies another tool made, skipped and named
        # beside this line
        return "no studies hpsearch can read in this storage"
    # As wide as the longest name (up to 128 characters), so that a long one shifts no column
    width = max(28, *(len(row["study"]) for row in rows))
    lines = [
        f"{'study':<{width}} {'budget':>9} {'done':>5} {'pruned':>6} {'paused':>6} {'stopped':>7} "
        f"{'failed':>6} {'running':>7} {'waiting':>7} {'retries':>7}  best"
    ]
    for row in rows:
        best = (
            f"{row['best_value']:.2%} (trial {row['best_trial']})"
            if row["best_trial"] is not None
            else "-"
        )
        spent = f"{row['budget_spent']}/{row['budget'] or '?'}"
        lines.append(
            f"{row['study']:<{width}} {spent:>9} {row['complete']:>5} {row['pruned']:>6} "
            f"{row['paused']:>6} {row['stopped']:>7} {row['fail']:>6} {row['running']:>7} "
            f"{row['waiting']:>7} {row['retries']:>7}  {best}"
        )
    for row in rows:
        lines.extend(_running_line(row["study"], running) for running in row["running_trials"])
    for row in rows:  # a whole configuration does not fit a table column
        if row["best_config"] is not None:
            lines.append(
                f"best of {row['study']}: trial {row['best_trial']}, "
                f"{attrs.settings_text(row['best_config'])}"
            )
    return "\n".join(lines)


def _running_line(study: str, running: dict[str, Any]) -> str:
    worker = running["worker"] if isinstance(running["worker"], dict) else {}
    return (
        f"running in {study}: trial {running['trial']}, {running['epochs_done']}"
        f"/{running['epochs'] or '?'} epochs done, {describe(worker)}, "
        f"last heartbeat {running['heartbeat_age_seconds']:.0f} s ago"
        + (f"; {running['dead']}: the next worker resumes it" if running["dead"] else "")
    )
