"""Thousands of finished trials in a study in seconds, for tests and benchmarks of large studies."""

from __future__ import annotations

import datetime
import json
from typing import Any

import optuna
import sqlalchemy
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial


def add_trials_in_bulk(study: optuna.Study, trials: list[FrozenTrial]) -> None:
    """What `study.add_trials` stores, inserted in bulk: Optuna's way (a transaction a trial, each
    counting the trials before it) takes minutes for thousands. Rows as Optuna's own models
    define them; each trial's number follows the study's last."""
    if not trials:  # an insert of no rows is SQLAlchemy's INSERT DEFAULT VALUES: one empty row
        return
    storage = study._storage._backend  # behind Optuna's cache: the RDBStorage
    start = len(study.get_trials(deepcopy=False))
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    with storage.engine.begin() as connection:
        ids = connection.execute(
            sqlalchemy.insert(models.TrialModel.__table__).returning(
                models.TrialModel.__table__.c.trial_id, sort_by_parameter_order=True
            ),
            [
                {
                    "number": start + index,
                    "study_id": study._study_id,
                    "state": trial.state.name,
                    "datetime_start": now,
                    "datetime_complete": now,
                }
                for index, trial in enumerate(trials)
            ],
        ).scalars()
        children: dict[Any, list[dict]] = {}
        for trial_id, trial in zip(ids, trials):
            for model, rows in _child_rows(trial_id, trial).items():
                children.setdefault(model.__table__, []).extend(rows)
        for table, rows in children.items():
            if rows:  # SQLAlchemy deprecates executing with an empty parameter list
                connection.execute(sqlalchemy.insert(table), rows)


def _child_rows(trial_id: int, trial: FrozenTrial) -> dict[Any, list[dict]]:
    finite = models.TrialIntermediateValueModel.TrialIntermediateValueType.FINITE.name
    rows: dict[Any, list[dict]] = {
        models.TrialParamModel: [
            {
                "trial_id": trial_id,
                "param_name": name,
                "param_value": trial.distributions[name].to_internal_repr(value),
                "distribution_json": optuna.distributions.distribution_to_json(
                    trial.distributions[name]
                ),
            }
            for name, value in trial.params.items()
        ],
        models.TrialUserAttributeModel: _attribute_rows(trial_id, trial.user_attrs),
        models.TrialSystemAttributeModel: _attribute_rows(trial_id, trial.system_attrs),
        models.TrialIntermediateValueModel: [
            {
                "trial_id": trial_id,
                "step": step,
                "intermediate_value": value,
                "intermediate_value_type": finite,
            }
            for step, value in trial.intermediate_values.items()
        ],
    }
    if trial.value is not None:
        rows[models.TrialValueModel] = [
            {
                "trial_id": trial_id,
                "objective": 0,
                "value": trial.value,
                "value_type": models.TrialValueModel.TrialValueType.FINITE.name,
            }
        ]
    return rows


def _attribute_rows(trial_id: int, attributes: dict[str, Any]) -> list[dict]:
    return [
        {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
        for key, value in attributes.items()
    ]
