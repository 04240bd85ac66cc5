"""Which final weights a study keeps: the best trial's alone, however its trials end."""

from __future__ import annotations

import uuid
from pathlib import Path

import optuna

from search import attrs
from search.run import trial_files
from search.study.storage import open_storage
from trainer.files import WEIGHTS_NAME


def test_trials_tied_at_the_best_value_and_completed_out_of_order_keep_one_weights_file(tmp_path):
    # A retry keeps its lineage's low number, so a tie completed out of order is common in a
    # search: the chaos run (benchmarks/chaos) found trial 1's weights left beside trial 0's.
    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    study = optuna.create_study(storage=storage, study_name="ties", direction="maximize")
    study.set_user_attr(attrs.STUDY_ID, uuid.uuid4().hex)
    folder = trial_files.study_folder(tmp_path / "checkpoints", study)
    earlier, later = study.ask(), study.ask()
    for trial in (later, earlier):  # the later trial completes first, with the same value
        trial_folder = trial_files.trial_folder(folder, trial.number)
        trial_folder.mkdir(parents=True)
        (trial_folder / WEIGHTS_NAME).write_bytes(b"final weights")
        trial_files.release(study, study.tell(trial, 0.9), trial_folder)

    assert attrs.best_trial(study.get_trials()).number == earlier.number
    kept = sorted(path.relative_to(folder) for path in folder.rglob("*.pt"))
    assert kept == [Path(f"trial-{earlier.number}") / WEIGHTS_NAME]
