"""Studies of made trials, recorded as a worker records them, so a report of 1, 3 or 300 trials is
drawn in a second: `create_trial` and `add_trial`, no training.

Each trial samples the main Imagenette study's space (studies/imagenette.toml), keeps its whole
configuration in the `config` user attribute and a val top-1 per epoch. `spread` sets how far
the trials' values lie apart: a short search on tiny images gives curves within a point or two of
each other, which is where a report's ticks and colour scales have failed before.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from search import attrs

OPTIMIZERS = ("sgd", "adam", "adamw", "radam", "ranger")
SPACE = {
    "optimizer": CategoricalDistribution(OPTIMIZERS),
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "eps": FloatDistribution(1e-9, 1e-3, log=True),
    "momentum": FloatDistribution(0.0, 0.99),
}
START = datetime(2026, 12, 1, 9, 0)
SETTINGS = {"image_size": 32, "batch_size": 64, "schedule": "cosine", "nesterov": False}


def made_study(
    url: str, name: str, trials: int, *, epochs: int = 6, spread: float = 0.6, seed: int = 0
) -> optuna.Study:
    """A study of `trials` finished trials: the first complete, later ones also pruned or failed."""
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    rng = random.Random(seed)
    for number in range(trials):
        study.add_trial(_made_trial(rng, number, epochs, spread))
    return study


def _made_trial(rng: random.Random, number: int, epochs: int, spread: float) -> FrozenTrial:
    params = _sampled(rng)
    config = {**SETTINGS, "epochs": epochs, "eps": None, "momentum": None, **params}
    # Best near lr 1e-2, as ResNet-18 on Imagenette; `spread` scales how much lr matters
    quality = math.exp(-((math.log10(params["lr"]) + 2) ** 2) / 2)
    final = 0.1 + spread * quality + rng.uniform(0, 0.02)
    state = _state(rng, number)
    run = epochs if state == TrialState.COMPLETE else rng.randint(1, epochs - 1)
    curve = {
        epoch: round(final * (1 - math.exp(-epoch / 2)) + 0.1 * math.exp(-epoch / 2), 4)
        for epoch in range(1, run + 1)
    }
    if state == TrialState.FAIL:
        curve = {}
    made = create_trial(
        state=state,
        value=max(curve.values()) if state == TrialState.COMPLETE else None,
        params=params,
        distributions={name: SPACE[name] for name in params},
        intermediate_values=curve,
        user_attrs=_user_attrs(config, curve, state, rng),
    )
    # One trial after another, as one worker runs them, so the timeline has bars to draw
    made.datetime_start = START + timedelta(minutes=number)
    made.datetime_complete = made.datetime_start + timedelta(seconds=made.user_attrs[attrs.SECONDS])
    return made


def _sampled(rng: random.Random) -> dict:
    optimizer = rng.choice(OPTIMIZERS)
    params = {"optimizer": optimizer, "lr": 10 ** rng.uniform(-4, 0)}
    if optimizer == "sgd":
        params["momentum"] = rng.uniform(0.0, 0.99)
    else:
        params["eps"] = 10 ** rng.uniform(-9, -3)
    return params


def _state(rng: random.Random, number: int) -> TrialState:
    if number == 0:
        return TrialState.COMPLETE
    draw = rng.random()
    if draw < 0.1:
        return TrialState.FAIL
    return TrialState.PRUNED if draw < 0.4 else TrialState.COMPLETE


def _user_attrs(config: dict, curve: dict, state: TrialState, rng: random.Random) -> dict:
    seconds = [rng.uniform(8, 12) for _ in curve]
    made = {
        attrs.CONFIG: config,
        attrs.EPOCHS_RUN: len(curve),
        attrs.SECONDS: round(sum(seconds), 3),
        attrs.DEVICE: "cpu",
    }
    if curve:
        made[attrs.BEST_EPOCH] = max(curve, key=curve.get)
    if state == TrialState.FAIL:
        made[attrs.FAIL_REASON] = "FloatingPointError: the loss is non-finite (nan) at step 3"
    return made


def one_sgd_trial_study(url: str, name: str, *, momentum: float = 0.07032569761590807):
    """The study a new user's first report came from: one SGD trial whose val top-1 stays within
    a point (13.4% to 14.3%) over its epochs, so `.0%` ticks repeat themselves."""
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    params = {"optimizer": "sgd", "lr": 0.0123, "momentum": momentum}
    curve = {1: 0.1342, 2: 0.1377, 3: 0.1401, 4: 0.1418, 5: 0.1426}
    config = {**SETTINGS, "epochs": 5, "eps": None, **params}
    made = create_trial(
        value=max(curve.values()),
        params=params,
        distributions={name: SPACE[name] for name in params},
        intermediate_values=curve,
        user_attrs={attrs.CONFIG: config, attrs.EPOCHS_RUN: 5, attrs.SECONDS: 51.2},
    )
    made.datetime_start, made.datetime_complete = START, START + timedelta(seconds=51.2)
    study.add_trial(made)
    return study


def finish_by_hand(study: optuna.Study, at_rung_1: float) -> None:
    """What another worker would leave: L1 and L2 run, scored at epoch 1 and pruned."""
    for queued in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if attrs.PROMOTION_OF in queued.user_attrs:
            continue
        study._storage.set_trial_state_values(queued._trial_id, TrialState.RUNNING)
        study._storage.set_trial_intermediate_value(queued._trial_id, 1, at_rung_1)
        study._storage.set_trial_state_values(queued._trial_id, TrialState.PRUNED)


# The one parameter of the rung tests' studies (tests/study/test_promotion.py, test_trial_notes.py)
X = {"x": FloatDistribution(0, 1)}


def add_rung_1_trial(study: optuna.Study, at_rung_1: float, **user_attrs) -> FrozenTrial:
    """A trial that reported `at_rung_1` at epoch 1 and stopped there (PRUNED), with `user_attrs`
    (attrs.PAUSED_AT makes it a paused one): what asha ranks at its first rung."""
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED,
            params={"x": at_rung_1},
            distributions=X,
            intermediate_values={1: at_rung_1},
            user_attrs=user_attrs,
        )
    )
    return study.get_trials(deepcopy=False)[-1]
