"""Each trial's files: where they live, whose they are, and what is kept once the trial is over.

A study's files live in a folder named after the study and its identity (`quick-1f2e3d4c`), so
two studies of one name, in two storages or on two machines, never share a file. A trial's
folder is named after its first attempt, which its retries resume from. Every path is built
here from the study and a trial number, never read from the storage, and every checkpoint and
weights file records its owner (`owner`), checked before it is resumed or exported.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import attrs
from search.errors import HpsearchError
from search.run.paths import safe_child
from search.study.recorded import study_id
from trainer.files import CHECKPOINT_NAME, WEIGHTS_NAME, read_owner
from trainer.whole_files import remove_abandoned_temporaries


class ForeignWeights(HpsearchError):
    """A weights file in a trial's folder records another owner: never exported as this trial's."""


def study_folder(root: Path, study: optuna.Study) -> Path:
    """root/NAME-ID8 for the study; a study of an older hpsearch, with no identity, keeps root/NAME
    so that its checkpoints still resume."""
    identity = study_id(study)
    name = study.study_name if identity is None else f"{study.study_name}-{identity[:8]}"
    return safe_child(root, name)


def trial_folder(study_folder: Path, first_attempt: int) -> Path:
    return safe_child(study_folder, f"trial-{first_attempt}")


def owner(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> dict[str, Any] | None:
    """What each checkpoint and weights file of this trial records, and what reading one checks:
    the study's identity, the first attempt and the parameters. None for a study with no
    identity, whose older files record no owner."""
    identity = study_id(study)
    if identity is None:
        return None
    return {
        "study_id": identity,
        "study": study.study_name,
        "trial": attrs.first_attempt(trial),
        "params": dict(trial.params),
    }


def release(study: optuna.Study, trial: FrozenTrial, folder: Path) -> None:
    """After a trial ended for good: drop its checkpoint; keep final weights only for the best."""
    (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
    if trial.state == TrialState.COMPLETE and (folder / WEIGHTS_NAME).exists():
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = attrs.best_trial(complete)
        if best is not None and best.number == trial.number:
            _drop_weights_ranked_below(complete, trial, folder.parent)
            remove_unfinished_writes(folder)
            return
    shutil.rmtree(folder, ignore_errors=True)


def remove_unfinished_writes(folder: Path) -> None:
    """The lineage's attempt has ended and its folder stays (the best trial's weights, a paused
    trial's checkpoint): what an earlier attempt, killed mid-write, left half-written goes now,
    whatever its age. Its writer is dead: a lineage's attempts run one after another, and one
    the study ended early (silent, not dead) loses its write as it lost its trial."""
    if folder.is_dir():
        remove_abandoned_temporaries(folder, older_than_seconds=0)


def remove_trial_files(folder: Path) -> None:
    """A paused trial that can no longer be promoted: its checkpoint goes (it has no weights)."""
    shutil.rmtree(folder, ignore_errors=True)


def remove_closed_lineages(
    study_folder: Path, trials: Iterable[FrozenTrial], closed: Iterable[int] = ()
) -> None:
    """Remove the files of the lineages `closed` (first attempts) and of every other whose paused
    trial's promotion was closed: one closed by a process killed before it removed them (the chaos
    run's leaked trial-11/last.pt) is never read again either."""
    before = {attrs.first_attempt(t) for t in trials if attrs.PROMOTION_CLOSED in t.user_attrs}
    for first in {*closed, *before}:
        remove_trial_files(trial_folder(study_folder, first))


def lineage_checkpoint(study_folder: Path, trial: FrozenTrial) -> Path:
    """The checkpoint the trial's next attempt resumes from, where it would be."""
    return trial_folder(study_folder, attrs.first_attempt(trial)) / CHECKPOINT_NAME


def remove_lineage_files(study_folder: Path, trial: FrozenTrial) -> None:
    """A trial FAIL for good (out of retries): no attempt will resume from its lineage's
    checkpoint, which would otherwise stay on disk for the life of the study."""
    remove_trial_files(trial_folder(study_folder, attrs.first_attempt(trial)))


def _drop_weights_ranked_below(
    complete: list[FrozenTrial], best: FrozenTrial, study_folder: Path
) -> None:
    """Drop the weights of every other complete trial of this read of the study: each ranks
    below `best` as every command ranks them, by a lower value or, on an equal one, a later
    number (a trial that completed before the earlier one it ties with kept its weights then).
    A winner that this read missed, as a worker may read a moment too early, is not in it."""
    for trial in complete:
        if attrs.first_attempt(trial) != attrs.first_attempt(best):
            shutil.rmtree(
                trial_folder(study_folder, attrs.first_attempt(trial)), ignore_errors=True
            )


def kept_weights(root: Path, study: optuna.Study, trial: FrozenTrial) -> Path | None:
    """The trial's final weights, if its worker kept them; a file there that records another
    owner raises ForeignWeights."""
    path = trial_folder(study_folder(root, study), attrs.first_attempt(trial)) / WEIGHTS_NAME
    if not path.is_file():
        return None
    expected = owner(study, trial)
    recorded = read_owner(path)  # without torch: export never loads it
    if expected is not None and recorded != expected:
        raise ForeignWeights(
            f"{path} records {_owner_text(recorded)}, not trial {trial.number} of study "
            f"{study.study_name!r}; not copied"
        )
    return path


def _owner_text(recorded: dict[str, Any] | None) -> str:
    if not recorded:
        return "no owner"
    trial, study, identity = (recorded.get(key) for key in ("trial", "study", "study_id"))
    return f"trial {trial} of study {study!r} ({identity})"
