"""The study note's count of trials stopped to resume says what a retry resumes from: its last
checkpoint, or epoch 1 for one stopped before its first (Ctrl-C in epoch 1), where the note had
said every one resumes from its checkpoint."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState, create_trial

from search.attrs import RETRIED_FROM
from search.serve.notes import best_trial_line


def test_the_note_does_not_promise_a_checkpoint_to_every_stopped_trial(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'studies.db'}")
    study.add_trial(create_trial(state=TrialState.FAIL))  # stopped in epoch 1: no checkpoint
    retry = create_trial(state=TrialState.PRUNED, value=None, intermediate_values={1: 0.3})
    retry.set_user_attr(RETRIED_FROM, 0)
    study.add_trial(retry)

    line = best_trial_line(study)

    assert "1 stopped to resume" in line, line
    assert "each resumes from its checkpoint" not in line
    assert "from its last checkpoint, or from epoch 1 when it was stopped before one" in line
