"""What the pruner reads of the study at each epoch: a read that may lag a few seconds serves the
median pruner (it compares with finished trials), but asha ranks a trial with every trial that
reached its rung, and the trials of a fused group reach it together."""

from __future__ import annotations

import optuna
from optuna.storages import RDBStorage

from search.run.objective import report_epoch
from search.study.optuna_compat import cached_storage
from search.study.promotion import AshaPruner
from trainer import PauseAfterEpoch


def test_asha_ranks_each_trial_of_a_fused_group_with_those_that_reported_before_it(tmp_path):
    """A fused worker's trials report a rung one after another in the same instant: each is
    ranked with those that reported before it, as trials of separate workers are. With the study
    read just before (within the pruner's lag), each was ranked alone and went on."""
    storage = cached_storage(RDBStorage(f"sqlite:///{tmp_path / 'studies.db'}"))
    pruner = AshaPruner(min_epochs=1, reduction_factor=2, epochs=3)
    study = optuna.create_study(storage=storage, direction="maximize", pruner=pruner)
    group = [study.ask() for _ in range(3)]
    study.get_trials(deepcopy=False)  # the worker's read as it started the group
    paused = []
    for trial, val_top1 in zip(group, (0.9, 0.5, 0.1)):
        try:
            report_epoch(trial, 1, val_top1, last=3)
        except PauseAfterEpoch:
            paused.append(trial.number)
    assert paused == [1, 2]
