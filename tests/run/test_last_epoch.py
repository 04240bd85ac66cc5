"""A trial's last epoch is reported, never pruned: stopping it then saves nothing."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search.run.objective import report_epoch
from search.study.promotion import AshaPruner
from trainer import PauseAfterEpoch


def _study(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    good = study.ask()
    good.report(0.9, 1)
    good.report(0.95, 2)
    study.tell(good, 0.95)
    return study


@pytest.mark.parametrize(
    "pruner, stopped",
    [
        (optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0), optuna.TrialPruned),
        (AshaPruner(min_epochs=1, reduction_factor=2, epochs=2), PauseAfterEpoch),
    ],
    ids=["median", "asha"],
)
def test_a_poor_trial_is_stopped_before_its_last_epoch_and_completes_at_it(pruner, stopped):
    """A trial the median pruner stopped at its last epoch had trained to its end, yet ended
    PRUNED: the report's factor figures and the sampler's finished trials lost it."""
    study = _study(pruner)
    poor = study.ask()
    with pytest.raises(stopped):
        report_epoch(poor, 1, 0.1, last=2)  # epoch 1 of 2: stopping it saves an epoch
    last = study.ask()
    report_epoch(last, 1, 0.1, last=1)  # epoch 1 of 1: its last, so it completes
    study.tell(last, 0.1)
    assert study.trials[-1].state == TrialState.COMPLETE
    assert study.trials[-1].intermediate_values == {1: 0.1}
