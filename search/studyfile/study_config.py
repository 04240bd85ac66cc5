"""A whole study file: `StudyConfig`, checked as one, and the one function that turns a trial's
factors into its training configuration (`StudyConfig.train_config`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.errors import StudyFileError
from search.studyfile.checks import SettingError, check_keys, check_type, rebuilt, trainer_check
from search.studyfile.sections import (
    LOG_BY_DEFAULT,
    SAMPLER_KEYS,
    SEARCHED,
    CheckpointSettings,
    DataSettings,
    HeartbeatSettings,
    PrunerSettings,
    Range,
    SamplerSettings,
    SearchSpace,
    StudySettings,
    TrainSettings,
    allows,
    describe_param,
    describe_point,
)
from trainer.config import TrainConfig
from trainer.errors import ConfigError
from trainer.model_names import DEFAULT_MODEL, check_model_name

# The setting each keyword of `StudyConfig.with_overrides` sets, as a dotted key of the file
OVERRIDDEN_KEYS = {
    "trials": "study.trials",
    "epochs": "train.epochs",
    "data": "data.source",
    "image_size": "data.image_size",
    "storage": "study.storage",
}


@dataclass(frozen=True)
class StudyConfig:
    path: Path  # the study file, as the user named it
    study: StudySettings
    data: DataSettings
    # What every trial shares: [train], with [data] image_size and batch_size and [study] seed
    train: TrainSettings
    space: SearchSpace | None = None  # None for a study that only runs its points
    sampler: SamplerSettings = dataclasses.field(default_factory=SamplerSettings)
    pruner: PrunerSettings = dataclasses.field(default_factory=PrunerSettings)
    heartbeat: HeartbeatSettings = dataclasses.field(default_factory=HeartbeatSettings)
    checkpoint: CheckpointSettings = dataclasses.field(default_factory=CheckpointSettings)
    warm_start: tuple[dict[str, Any], ...] = ()  # known-good points queued before the search
    points: tuple[dict[str, Any], ...] = ()  # a factor study's points, each queued once as a trial
    # The settings `with_overrides` set, each a dotted key and the keyword that set it: a study
    # file compared with its study names a flag's value as the flag's, not as the file's (whose
    # user would look for it there in vain). No setting of the study: not compared, not stored.
    overridden: tuple[tuple[str, str], ...] = dataclasses.field(
        default=(), compare=False, repr=False
    )

    def __post_init__(self) -> None:
        for name in ("warm_start", "points"):  # frozen: a list from a caller becomes a tuple
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._check_train_matches()
        self._check_plan()
        self._check_model_set_once()
        self._check_train()
        if self.space is not None:
            self._check_space(self.space)
        self._check_points("points", self.points)
        self._check_points("warm_start", self.warm_start)

    def train_config(self, factors: Mapping[str, Any]) -> TrainConfig:
        """One trial's training configuration: the study's shared settings plus its factors
        (optimizer and lr, eps or momentum where its optimizer uses them, and model where the
        space or the points name models)."""
        return TrainConfig(**{**self.train.to_dict(), **unset_unless_given(factors)})

    def idle_pruner(self, budget: int | None = None) -> str | None:
        """Why the pruner can stop no trial before its last epoch, or None. Such a pruner runs
        every trial to its end, as kind "none" would, and nothing else would say so. `budget`:
        the study's trials where not the file's (a stored one, `--trials`)."""
        pruner, epochs = self.pruner, self.train.epochs
        trials = self.study.trials if budget is None else budget
        if pruner.kind == "none":
            return None
        idle = f"pruner {pruner.kind!r} will stop no trial early: "
        if pruner.kind in ("median", "percentile"):
            if pruner.startup_trials >= trials:  # Optuna's n_startup_trials
                return idle + (
                    f"it waits for {pruner.startup_trials} finished trial(s) "
                    f"(pruner.startup_trials), but the budget is {trials}; give "
                    f"pruner.startup_trials below {trials}"
                )
            first, setting = max(pruner.warmup_epochs, 1), "warmup_epochs"
        else:  # halving, hyperband, asha: the first rung
            first, setting = pruner.min_epochs, "min_epochs"
        if first < epochs:
            return None
        # A trial's last epoch is never judged, and no pruner judges before epoch 1
        lower = f"give pruner.{setting} below {epochs}, or" if epochs > 1 else "train"
        return idle + (
            f"it first compares trials at epoch {first} (pruner.{setting}), but they train "
            f"{epochs} epoch(s); {lower} more epochs"
        )

    def idle_sampler(self, budget: int | None = None) -> str | None:
        """Why the sampler draws every trial at random, or None: a model-based sampler (TPE, GP,
        CMA-ES) models nothing before its startup trials have finished, which a budget of no more
        trials never reaches; Optuna says nothing of it. `budget` as for `idle_pruner`."""
        sampler = self.sampler
        trials = self.study.trials if budget is None else budget
        # A points study queues its trials; random and grid draw no startup trials
        if self.space is None or "startup_trials" not in SAMPLER_KEYS[sampler.kind]:
            return None
        if sampler.startup_trials < trials:
            return None
        return (
            f"sampler {sampler.kind!r} will draw every trial at random: it models only after "
            f"{sampler.startup_trials} finished trial(s) (sampler.startup_trials), but the budget "
            f'is {trials}; give sampler.startup_trials below {trials}, or kind = "random"'
        )

    def with_overrides(
        self,
        *,
        trials: int | None = None,
        epochs: int | None = None,
        data: str | None = None,
        image_size: int | None = None,
        storage: str | None = None,
    ) -> StudyConfig:
        """This study with command-line flags applied (None keeps the file's value), checked again.

        A storage URL given here may hold a password: a flag does not end up in a file.
        """
        given = {
            name: value
            for name, value in (
                ("trials", trials),
                ("epochs", epochs),
                ("data", data),
                ("image_size", image_size),
                ("storage", storage),
            )
            if value is not None
        }
        try:  # rebuilt() keeps every setting given as None
            study = rebuilt("study", self.study, trials=trials, storage=storage)
            data_settings = rebuilt("data", self.data, source=data, image_size=image_size)
            train = rebuilt("train", self.train, image_size=data_settings.image_size, epochs=epochs)
            overridden = dict(self.overridden) | {OVERRIDDEN_KEYS[name]: name for name in given}
            return dataclasses.replace(
                self,
                study=study,
                data=data_settings,
                train=train,
                overridden=tuple(overridden.items()),
            )
        except ConfigError as error:
            raise StudyFileError(
                f"{self.path} with overrides ({', '.join(given)}): {error}"
            ) from None

    def _check_train_matches(self) -> None:
        for name, owner, value in (
            ("image_size", "data", self.data.image_size),
            ("batch_size", "data", self.data.batch_size),
            ("seed", "study", self.study.seed),
        ):
            if getattr(self.train, name) != value:
                raise SettingError(
                    f"train.{name}",
                    f"must equal {owner}.{name}={value}, which sets it, "
                    f"but got {getattr(self.train, name)}",
                )

    def _check_plan(self) -> None:
        if self.space is None and not self.points:
            raise ConfigError(
                "a study needs a [space] to search or [[points]] to run, but this one has neither"
            )
        if self.space is not None and self.points:
            raise ConfigError(
                "a study has a [space] or [[points]], not both; "
                "to run known points before a search, list them as [[warm_start]]"
            )
        if self.warm_start and self.space is None:
            raise ConfigError(
                "[[warm_start]] needs a [space] to search after it; to run only these points, "
                "list them as [[points]]"
            )
        if self.points and self.study.trials > len(self.points):
            raise SettingError(
                "study.trials",
                f"must be at most the {len(self.points)} points, since each point "
                f"runs once, but got {self.study.trials}",
            )

    def _check_model_set_once(self) -> None:
        """[train] model fixes every trial's model, so a [space] or points that name models too
        would silently overrule it; and a points study names a model in each point or in none,
        since a point without one would otherwise take another point's."""
        named = [index for index, point in enumerate(self.points) if "model" in point]
        if named and len(named) < len(self.points):
            missing = next(index for index in range(len(self.points)) if index not in named)
            raise SettingError(
                f"points[{missing}].model",
                f"is required, since points[{named[0]}] names a model: name one in every "
                "point, or in none and set [train] model",
            )
        if self.train.model != DEFAULT_MODEL:
            refuse_train_model_beside(self.train.model, self.space, self.points)

    def _check_train(self) -> None:
        # Any point the study reaches would do, as every corner and point is checked next; this one
        # files a bad [train] value under "train". The top corner, because a lower bound of 0
        # momentum is the one that [train] settings (nesterov) refuse.
        if self.points:
            reachable = self.points[0]
        else:
            assert self.space is not None  # a study without points has a space (checked first)
            reachable = self.space.corners()[-1]
        _judged("train", self.train, reachable)

    def _check_space(self, space: SearchSpace) -> None:
        ranges = [name for name in LOG_BY_DEFAULT if isinstance(getattr(space, name), Range)]
        if self.sampler.kind == "grid" and ranges:
            raise SettingError(
                "sampler.kind",
                f"'grid' cannot search the range space.{ranges[0]}; give fixed "
                "values, or list the combinations as [[points]]",
            )
        for model in space.models or ():  # a model may need larger images than the study's
            trainer_check("space.model", model=model, image_size=self.train.image_size)
        # [train] settings such as nesterov limit what a trial may use
        for corner in space.corners():
            _judged(f"space (at {describe_point(corner)})", self.train, corner)

    def _check_points(self, name: str, points: tuple[dict[str, Any], ...]) -> None:
        first_seen: dict[tuple, int] = {}
        for index, point in enumerate(points):
            where = f"{name}[{index}]"
            params = point_to_params(point, self.train, where=where)
            if self.space is not None:
                _check_within(params, self.space, where)
            earlier = first_seen.setdefault(tuple(sorted(params.items())), index)
            if earlier != index:
                raise SettingError(
                    where, f"repeats {name}[{earlier}]; each point runs once, so list it once"
                )


def refuse_train_model_beside(
    model: str, space: SearchSpace | None, points: tuple[dict[str, Any], ...]
) -> None:
    """[train] model fixes every trial's model: refused where [space] or [[points]] name models."""
    elsewhere = (
        "space.model"
        if space is not None and space.models is not None
        else "[[points]]"
        if any("model" in point for point in points)
        else None
    )
    if elsewhere:
        raise SettingError(
            "train.model",
            f"must be left out when {elsewhere} names the models, but got {model!r}; "
            "name the models in one place",
        )


def point_to_params(
    point: Mapping[str, Any], train: TrainSettings | None = None, *, where: str = "point"
) -> dict[str, Any]:
    """Check a point (of [[points]] or [[warm_start]]) and return its params, numbers as floats.

    A point names optimizer and lr, and eps or momentum only where its optimizer uses them;
    the trainer judges it, together with the study's shared settings when train is given.
    """
    if not isinstance(point, Mapping):
        raise SettingError(where, f"must be a table of {', '.join(SEARCHED)}, but got {point!r}")
    check_keys(point, SEARCHED, where)
    params = {name: value for name, value in point.items() if value is not None}
    for name in ("optimizer", "lr"):
        if name not in params:
            raise SettingError(f"{where}.{name}", "is required")
    check_type(f"{where}.optimizer", params["optimizer"], str)
    if "model" in params:
        check_type(f"{where}.model", params["model"], str)
        _check_model_name(f"{where}.model", params["model"])
    for name in ("lr", "eps", "momentum"):
        if name in params:
            check_type(f"{where}.{name}", params[name], float)
            params[name] = float(params[name])  # Optuna records floats; TOML's `lr = 1` is an int
    # Whether the model takes the study's image size is judged once [train] is known
    _judged(where, train, params if train is not None else _without(params, "model"))
    return params


def _without(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in params.items() if key != name}


def _check_model_name(key: str, model: str) -> None:
    # The name alone: whether the model takes the study's image size is judged with [train]
    try:
        check_model_name(model)
    except ConfigError as error:
        raise SettingError(key, str(error), separator=": ") from None


def _judged(where: str, train: TrainSettings | None, point: Mapping[str, Any]) -> TrainConfig:
    """TrainConfig's verdict on a point with the study's shared settings; a complaint is filed
    under `where`."""
    shared = train.to_dict() if train is not None else {}
    return trainer_check(where, **{**shared, **unset_unless_given(point)})


def unset_unless_given(params: Mapping[str, Any]) -> dict[str, Any]:
    """eps and momentum as given, else unset: one
    optimizer's values must not leak into another's."""
    return {"eps": None, "momentum": None, **params}


def _check_within(params: Mapping[str, Any], space: SearchSpace, where: str) -> None:
    if params["optimizer"] not in space.optimizers:
        raise SettingError(
            f"{where}.optimizer",
            f"must be one of space.optimizer ({', '.join(space.optimizers)}), "
            f"but got {params['optimizer']!r}",
        )
    if "model" in params:
        _check_model_within(params["model"], space, where)
    searched = space.params_for(params["optimizer"])
    for name, value in params.items():
        if name in ("optimizer", "model"):
            continue
        if name not in searched:
            raise SettingError(f"{where}.{name}", f"is not searched, since [space] has no {name}")
        allowed = searched[name]
        if not allows(allowed, value):
            raise SettingError(
                f"{where}.{name}",
                f"must lie within space.{name} ({describe_param(allowed)}), but got {value}",
            )


def _check_model_within(model: str, space: SearchSpace, where: str) -> None:
    if space.models is None:
        raise SettingError(
            f"{where}.model", "is not searched, since [space] has no model; set [train] model"
        )
    if model not in space.models:
        raise SettingError(
            f"{where}.model",
            f"must be one of space.model ({', '.join(space.models)}), but got {model!r}",
        )
