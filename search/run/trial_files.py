"""Each trial's checkpoint folder: where it lives, and what is kept once the trial is over.

A retry resumes from the folder of the first attempt, so the folder is keyed by that number.
Finished trials give their checkpoints back; only the best trial's final weights stay, for
`export` to hand over.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search import attrs
from search.run.paths import safe_child
from trainer.checkpoint import CHECKPOINT_NAME
from trainer.weights import WEIGHTS_NAME


def trial_folder(root: Path, study_name: str, first_attempt: int) -> Path:
    return safe_child(safe_child(root, study_name), f"trial-{first_attempt}")


def release(study: optuna.Study, trial: optuna.trial.FrozenTrial, folder: Path) -> None:
    """After a trial ended for good: drop its checkpoint; keep final weights only for the best."""
    (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
    if trial.state == TrialState.COMPLETE and (folder / WEIGHTS_NAME).exists():
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = attrs.best_trial(complete)
        if best is not None and best.number == trial.number:
            _drop_weights_worse_than(complete, trial.value)
            return
    shutil.rmtree(folder, ignore_errors=True)


def _drop_weights_worse_than(complete: list[optuna.trial.FrozenTrial], value: float) -> None:
    # Strictly worse only: a worker that read the study a moment too early never deletes a winner.
    for trial in complete:
        path = trial.user_attrs.get(attrs.WEIGHTS)
        if path and trial.value < value:
            shutil.rmtree(Path(path).parent, ignore_errors=True)
