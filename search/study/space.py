"""The sampling space: the only place that calls `trial.suggest_*`.

eps is suggested only for optimizers that use it and momentum only for SGD, so a trial never
carries a parameter that did nothing; the sampler sees a conditional space.
"""

from __future__ import annotations

import re
from typing import Any

import optuna

from search.attrs import QUEUED_AS
from search.studyfile import Range, SearchSpace, StudyConfig
from trainer import OPTIMIZER_SETTINGS, TrainConfig


class NoPointLeft(Exception):
    """A study of fixed points has none left to run: another worker took the last one."""


def suggest(trial: optuna.Trial, config: StudyConfig) -> TrainConfig:
    """The trial's training configuration: the study's shared settings plus the sampled factors."""
    space = config.space or points_space(config.points)
    point = _point_of(trial, config) if config.space is None else None
    if config.space is None and point is None:
        raise NoPointLeft(f"study {config.study.name!r} has no queued point left to run")
    optimizer = _suggest(trial, "optimizer", space.optimizers)
    uses = OPTIMIZER_SETTINGS[optimizer]
    values: dict[str, Any] = {"optimizer": optimizer, "lr": _suggest(trial, "lr", space.lr)}
    for name, choice in (("eps", space.eps), ("momentum", space.momentum)):
        # A point that leaves it out trains with the optimizer's default: drawn from the span
        # of the other points instead, it took their value, and the comparison compared nothing
        if name in uses and choice is not None and (point is None or point.get(name) is not None):
            values[name] = _suggest(trial, name, choice)
    if space.models is not None:  # else every trial trains [train] model
        values["model"] = _suggest(trial, "model", space.models)
    return config.train_config(values)


def _point_of(trial: optuna.Trial, config: StudyConfig) -> dict[str, Any] | None:
    """The point of a points study that `trial` was queued as (`points[2]`, carried by its retries
    and continuations); None when it was queued as none of this study's points."""
    queued = trial.user_attrs.get(QUEUED_AS)
    found = re.fullmatch(r"points\[(\d+)\]", queued) if isinstance(queued, str) else None
    index = int(found[1]) if found is not None else len(config.points)
    return config.points[index] if index < len(config.points) else None


def _suggest(trial: optuna.Trial, name: str, choice: Any) -> Any:
    if isinstance(choice, Range):
        return trial.suggest_float(name, choice.low, choice.high, log=choice.log)
    if isinstance(choice, tuple):
        return choice[0] if len(choice) == 1 else trial.suggest_categorical(name, choice)
    return choice


def points_space(points: tuple[dict, ...]) -> SearchSpace:
    """The smallest space holding every point, so queued points are ordinary trials of it."""

    def span(name: str, log: bool) -> float | Range | None:
        values = sorted({point[name] for point in points if point.get(name) is not None})
        if not values:
            return None
        if len(values) == 1:
            return values[0]
        return Range(values[0], values[-1], log=log and values[0] > 0)

    optimizers = tuple(dict.fromkeys(point["optimizer"] for point in points))
    # Every point names a model or none does (StudyConfig checks it)
    models = tuple(dict.fromkeys(point["model"] for point in points if "model" in point))
    lr = span("lr", True)
    assert lr is not None  # every point names its lr (StudyConfig checks it)
    return SearchSpace(
        optimizers=optimizers,
        lr=lr,
        eps=span("eps", True),
        momentum=span("momentum", False),
        models=models or None,
    )
