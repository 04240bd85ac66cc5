"""Each trial's checkpoint folder: where it lives, and what is kept once the trial is over.

A retry resumes from the folder of the first attempt, so the folder is keyed by that number.
Finished trials give their checkpoints back; only the best trial's final weights stay, for
`export` to hand over.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import optuna
import platformdirs
from optuna.trial import TrialState

from search.objective import WEIGHTS_ATTR
from search.paths import safe_child
from trainer.checkpoint import CHECKPOINT_NAME, WEIGHTS_NAME

CHECKPOINTS_ENV = "HPSEARCH_CHECKPOINTS"


def checkpoint_root(flag: str | Path | None, study_file_dir: str | None) -> Path:
    """--checkpoint-dir, then $HPSEARCH_CHECKPOINTS, then the study file, then the user cache."""
    chosen = flag or os.environ.get(CHECKPOINTS_ENV) or study_file_dir
    return Path(chosen) if chosen else Path(platformdirs.user_cache_dir("hpsearch")) / "checkpoints"


def trial_folder(root: Path, study_name: str, first_attempt: int) -> Path:
    return safe_child(safe_child(root, study_name), f"trial-{first_attempt}")


def release(study: optuna.Study, trial: optuna.trial.FrozenTrial, folder: Path) -> None:
    """After a trial ended for good: drop its checkpoint; keep final weights only for the best."""
    (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
    if trial.state == TrialState.COMPLETE and (folder / WEIGHTS_NAME).exists() and _is_best(study, trial):
        _drop_weights_worse_than(study, trial.value)
        return
    shutil.rmtree(folder, ignore_errors=True)


def _is_best(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
    try:
        return study.best_trial.number == trial.number  # among equals, the first is the best
    except ValueError:  # no COMPLETE trial yet: cannot happen after one completed, but be safe
        return False


def _drop_weights_worse_than(study: optuna.Study, value: float) -> None:
    # Strictly worse only: a worker that read the study a moment too early never deletes a winner.
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        path = trial.user_attrs.get(WEIGHTS_ATTR)
        if path and trial.value < value:
            shutil.rmtree(Path(path).parent, ignore_errors=True)
