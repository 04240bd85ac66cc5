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

from search.paths import safe_child
from trainer.checkpoint import CHECKPOINT_NAME, WEIGHTS_NAME

CHECKPOINTS_ENV = "HPSEARCH_CHECKPOINTS"
from search.objective import WEIGHTS_ATTR


def checkpoint_root(flag: str | Path | None, study_file_dir: str | None) -> Path:
    """--checkpoint-dir, then $HPSEARCH_CHECKPOINTS, then the study file, then the user cache."""
    chosen = flag or os.environ.get(CHECKPOINTS_ENV) or study_file_dir
    return Path(chosen) if chosen else Path(platformdirs.user_cache_dir("hpsearch")) / "checkpoints"


def trial_folder(root: Path, study_name: str, first_attempt: int) -> Path:
    return safe_child(safe_child(root, study_name), f"trial-{first_attempt}")


def release(study: optuna.Study, trial: optuna.trial.FrozenTrial, folder: Path) -> None:
    """After a trial ended for good: drop its checkpoint; keep final weights only for the best."""
    (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
    weights = folder / WEIGHTS_NAME
    best = _best_value(study)
    if trial.state == TrialState.COMPLETE and weights.exists() and best is not None and trial.value >= best:
        _drop_weights_worse_than(study, trial.value)
        return
    shutil.rmtree(folder, ignore_errors=True)


def _best_value(study: optuna.Study) -> float | None:
    values = [trial.value for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    return max(values) if values else None


def _drop_weights_worse_than(study: optuna.Study, value: float) -> None:
    # Strictly worse only: a worker that read the study a moment too early never deletes a winner.
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        path = trial.user_attrs.get(WEIGHTS_ATTR)
        if path and trial.value < value:
            shutil.rmtree(Path(path).parent, ignore_errors=True)
