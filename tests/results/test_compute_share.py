"""The report's compute is the device's time: an epoch that K trials trained fused in one network
(`--trials-per-worker`) ran once for all K, so each counts 1/K of it. Summed whole, a study fused
by three read three times the compute of the same study trained one trial at a time."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from search import attrs
from search.results.report_data import get_summary_info


def _trial(epochs: list[tuple[float, int]], **more):
    """A finished trial whose history trained each (seconds, fused_trials) epoch."""
    history = [
        {"epoch": number, "val_top1": 0.5, "seconds": seconds, "fused_trials": fused}
        for number, (seconds, fused) in enumerate(epochs, start=1)
    ]
    seconds = sum(seconds for seconds, _ in epochs[more.get(attrs.RESUMED_FROM_EPOCH, 0) :])
    user_attrs = {attrs.HISTORY: history, attrs.SECONDS: seconds, attrs.EPOCHS_RUN: len(epochs)}
    return create_trial(
        state=TrialState.COMPLETE,
        value=0.5,
        intermediate_values=dict.fromkeys(range(1, len(epochs) + 1), 0.5),
        user_attrs={**user_attrs, **more},
    )


def test_an_epoch_trained_fused_counts_its_share_of_the_device_time(tmp_path):
    study = optuna.create_study(
        study_name="shares", storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize"
    )
    study.add_trial(_trial([(6.0, 3), (6.0, 3)]))  # fused by three: 2 s an epoch each
    study.add_trial(_trial([(6.0, 3), (3.0, 1)]))  # then alone, once the others ended
    # A retry that restored epoch 1 (trained by the attempt before, which counts it) and trained
    # epoch 2 fused by two
    study.add_trial(_trial([(5.0, 1), (4.0, 2)], **{attrs.RESUMED_FROM_EPOCH: 1}))
    study.add_trial(_trial([(7.0, 1)]))  # alone, as every trial ran before fusing
    assert get_summary_info(study).compute_seconds == 4.0 + 5.0 + 2.0 + 7.0


def test_a_history_in_another_shape_counts_the_trial_s_seconds_whole(tmp_path):
    study = optuna.create_study(
        study_name="other", storage=f"sqlite:///{tmp_path / 'o.db'}", direction="maximize"
    )
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            value=0.5,
            user_attrs={attrs.HISTORY: [{"seconds": "6"}], attrs.SECONDS: 6.0},
        )
    )
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE, value=0.4, user_attrs={attrs.HISTORY: "x", attrs.SECONDS: 2}
        )
    )
    assert get_summary_info(study).compute_seconds == 8.0
