"""Reading a trial's dashboard note as the dashboard does: through optuna_dashboard's own API."""

from __future__ import annotations

import optuna
import optuna_dashboard
from optuna.trial import FrozenTrial


def trial_note(study: optuna.Study, trial: FrozenTrial) -> str:
    return optuna_dashboard.get_note(optuna.Trial(study, trial._trial_id))
