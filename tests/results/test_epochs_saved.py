"""The report's "saved by pruning" counts the epochs the pruner saved, and only those: a trial that
diverged in its first epoch would have failed just the same without a pruner, so the epochs it
never reached are no saving (a factor study with one diverging point read "5 saved by pruning,
42%" where the pruner had saved 2)."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from search.results.page import build_report
from search.results.report_data import get_summary_info

EPOCHS = 3


def _trial(state: TrialState, epochs_run: int, curve: dict[int, float]):
    return create_trial(
        state=state,
        value=max(curve.values()) if state == TrialState.COMPLETE else None,
        intermediate_values=curve,
        user_attrs={"epochs_run": epochs_run, "config": {"epochs": EPOCHS, "lr": 0.01}},
    )


def test_a_failed_trial_s_unrun_epochs_are_not_saved_by_pruning(tmp_path):
    study = optuna.create_study(
        study_name="saved", storage=f"sqlite:///{tmp_path / 'saved.db'}", direction="maximize"
    )
    study.add_trial(_trial(TrialState.COMPLETE, 3, {1: 0.5, 2: 0.6, 3: 0.7}))
    study.add_trial(_trial(TrialState.FAIL, 0, {}))  # diverged before its first score
    study.add_trial(_trial(TrialState.PRUNED, 1, {1: 0.2}))  # the pruner saved 2 epochs
    summary = get_summary_info(study)
    assert summary.epochs_trained == 4
    assert summary.epochs_without_pruning == 3 + 0 + 3
    page = build_report([study], storage_label="sqlite:///saved.db").html
    assert "4 trained, against 6 with every trial run to its last epoch" in page
    assert "(2 saved by pruning, 33%)" in page
