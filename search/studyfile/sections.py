"""The sections of a study file, one frozen dataclass each, and the constants they are checked by.

The dataclasses check themselves, so a notebook that builds them directly gets the same checks
as a study file; the loader only adds the file and section names to their errors.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

from search.locations import DEFAULT_DATA
from search.studyfile.checks import (
    SettingError,
    check_at_least,
    check_at_most,
    check_folder_text,
    check_kind,
    check_path_text,
    check_types,
    check_url_text,
    check_within,
    trainer_check,
)
from trainer.config import OPTIMIZER_SETTINGS, TrainConfig

SECTIONS = (
    "study",
    "data",
    "train",
    "space",
    "sampler",
    "pruner",
    "heartbeat",
    "checkpoint",
    "warm_start",
    "points",
)
# What a trial samples, or a point fixes; model may instead be fixed for all trials in [train]
SEARCHED = ("optimizer", "lr", "eps", "momentum", "model")
LOG_BY_DEFAULT = {
    "lr": True,
    "eps": True,
    "momentum": False,
}  # lr and eps are scales; momentum is not
# The [sampler] and [pruner] keys each kind uses besides `kind`; a key its kind ignores is refused,
# so a study file never shows a setting that did nothing.
SAMPLER_KEYS: dict[str, frozenset[str]] = {
    "tpe": frozenset({"multivariate", "constant_liar", "startup_trials"}),
    "random": frozenset(),
    "grid": frozenset(),
    "cmaes": frozenset({"startup_trials"}),
    "gp": frozenset({"startup_trials"}),
}
PRUNER_KEYS: dict[str, frozenset[str]] = {
    "median": frozenset({"warmup_epochs", "startup_trials"}),
    "percentile": frozenset({"warmup_epochs", "startup_trials", "percentile"}),
    "halving": frozenset({"min_epochs", "reduction_factor"}),
    "hyperband": frozenset({"min_epochs", "reduction_factor"}),
    "asha": frozenset({"min_epochs", "reduction_factor"}),
    "none": frozenset(),
}
# TrainConfig fields a study sets somewhere other than [train].
TRAIN_KEYS_ELSEWHERE = {
    "image_size": "[data]",
    "batch_size": "[data]",
    "seed": "[study]",
    "optimizer": "[space] or [[points]]",
    "lr": "[space] or [[points]]",
    "eps": "[space] or [[points]]",
    "momentum": "[space] or [[points]]",
}
MAX_NAME_CHARS = 128
MAX_SEED = 2**32 - 1  # NumPy's limit, which Optuna's samplers inherit
# A beat an hour is already 120 times the default (30 s); past it a worker that died keeps its trial
# RUNNING for hours, and past ~292 years threading's wait overflows.
MAX_HEARTBEAT_SECONDS = 3600
# A dead worker's trial waits out the grace before it is failed and queued again: a day is longer
# than any outage worth sitting out (a longer one: the trial resumes from its checkpoint anyway)
MAX_GRACE_SECONDS = 24 * 3600
# Bounds on a study's size that no real search reaches, so a typo's extra zeros is refused rather
# than run for good. Nothing breaks beyond them (a budget of 10**30 trials is stored and run as
# readily as 30): the study just never ends. Optuna's samplers and the median pruner read every
# finished trial for each new one, so a trial costs more as the study grows (benchmarks/RESULTS.md
# measures up to 5,000); a million trials of even a minute each is two years of one GPU.
MAX_TRIALS = 1_000_000
# Each trial in flight holds its own network and optimizer state on the worker's one device: 256
# ResNet-18s with Ranger's state are about 60 GB before a single activation, a large GPU's memory.
MAX_TRIALS_PER_WORKER = 256
# A year of minutes: a longer wall-clock limit is no limit at all (leave timeout_minutes out).
MAX_TIMEOUT_MINUTES = 365 * 24 * 60


@dataclass(frozen=True)
class StudySettings:
    name: str
    trials: int  # the study's whole budget, shared by all its workers
    timeout_minutes: float | None = None  # wall clock after which no new trial starts
    seed: int = 0  # seeds the sampler and every trial's training
    storage: str | None = None  # a database URL; --storage and HPSEARCH_STORAGE take precedence
    direction: str = "maximize"  # the objective is val top-1, so only "maximize" is accepted
    # Epochs trained over all workers (restored epochs of a resumed trial not counted), after
    # which no worker starts or continues a trial; multi-fidelity searches compare at equal compute
    epochs_budget: int | None = None
    # Trials each worker trains at once, fused in one network where their model allows
    # (trainer/fused.py); a worker's own choice, which --trials-per-worker overrides
    trials_per_worker: int = 1

    def __post_init__(self) -> None:
        check_types(self)
        if not self.name.strip() or not self.name.isprintable() or len(self.name) > MAX_NAME_CHARS:
            raise SettingError(
                "name", f"must be 1 to {MAX_NAME_CHARS} printable characters, but got {self.name!r}"
            )
        if self.name != self.name.strip():  # `--study x` would not find "x "
            raise SettingError("name", f"must not begin or end with a space, but got {self.name!r}")
        check_at_least("trials", self.trials, 1)
        check_at_most("trials", self.trials, MAX_TRIALS)
        check_at_least("trials_per_worker", self.trials_per_worker, 1)
        check_at_most("trials_per_worker", self.trials_per_worker, MAX_TRIALS_PER_WORKER)
        if self.epochs_budget is not None:
            check_at_least("epochs_budget", self.epochs_budget, 1)
        if self.timeout_minutes is not None and not self.timeout_minutes > 0:
            raise SettingError(
                "timeout_minutes", f"must be positive, but got {self.timeout_minutes}"
            )
        if self.timeout_minutes is not None:
            check_at_most("timeout_minutes", self.timeout_minutes, MAX_TIMEOUT_MINUTES)
        if not 0 <= self.seed <= MAX_SEED:
            raise SettingError("seed", f"must be in [0, {MAX_SEED}], but got {self.seed}")
        if self.storage is not None and not self.storage.strip():
            raise SettingError("storage", "must be a database URL, but got an empty string")
        if self.storage is not None:
            check_url_text("storage", self.storage)
        if self.direction != "maximize":
            raise SettingError(
                "direction",
                f"must be 'maximize' (the objective is val top-1), but got {self.direction!r}",
            )


@dataclass(frozen=True)
class DataSettings:
    # An Imagenette name, or a folder path kept as typed (relative to the cwd)
    source: str = DEFAULT_DATA
    image_size: int = 128  # px, side of the square the network sees
    batch_size: int = 64  # images per optimizer step
    per_class: int | None = None  # cap on training images per class, for quick runs
    # Score trials on a split of train, keeping the official val unseen
    validation_fraction: float | None = None

    def __post_init__(self) -> None:
        check_types(self)
        if not self.source.strip():
            raise SettingError(
                "source", "must name an Imagenette size or a folder, but got an empty string"
            )
        check_path_text("source", self.source)
        trainer_check("image_size", image_size=self.image_size)
        trainer_check("batch_size", batch_size=self.batch_size)
        if self.per_class is not None:
            check_at_least("per_class", self.per_class, 1)
        if self.validation_fraction is not None and not 0 < self.validation_fraction < 1:
            raise SettingError(
                "validation_fraction", f"must be in (0, 1), but got {self.validation_fraction}"
            )


@dataclass(frozen=True)
class Range:
    NAMED_IN_ERRORS = "a range { low, high, log }"  # how a type error names what it wanted

    low: float
    high: float
    log: bool  # sample evenly in log space, as scales like lr and eps need

    def __post_init__(self) -> None:
        check_types(self)
        if self.log and not self.low > 0:
            raise SettingError("low", f"must be positive for a log range, but got {self.low}")
        if not self.low < self.high:
            raise SettingError("high", f"must be above low={self.low}, but got {self.high}")

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class SearchSpace:
    optimizers: tuple[str, ...]
    lr: float | Range
    eps: float | Range | None = None  # only for the optimizers that use eps
    momentum: float | Range | None = None  # only for sgd
    models: tuple[str, ...] | None = None  # torchvision model names; None: [train] model for all

    def __post_init__(self) -> None:
        # TOML and callers give lists; a frozen config holds tuples
        for name in ("optimizers", "models"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        check_types(self, rename={"optimizers": "optimizer", "models": "model"})
        self._check_optimizers()
        if self.models is not None:
            self._check_models(self.models)
        for setting in LOG_BY_DEFAULT:
            self._check_setting(setting)

    def params_for(self, optimizer: str) -> dict[str, float | Range]:
        """The lr, eps and momentum a trial with this optimizer samples or fixes; others unset."""
        used = OPTIMIZER_SETTINGS[optimizer] | {"lr"}
        return {
            name: getattr(self, name)
            for name in LOG_BY_DEFAULT
            if name in used and getattr(self, name) is not None
        }

    def corners(self) -> list[dict[str, Any]]:
        """Each optimizer with each combination of bounds: the extremes a trial can reach."""
        found = []
        for optimizer in self.optimizers:
            params = self.params_for(optimizer)
            for values in itertools.product(*(bounds(value) for value in params.values())):
                found.append({"optimizer": optimizer, **dict(zip(params, values))})
        return found

    def _check_optimizers(self) -> None:
        if not self.optimizers:
            raise SettingError("optimizer", "must name at least one optimizer, but got none")
        for optimizer in self.optimizers:
            trainer_check("optimizer", optimizer=optimizer)
        repeated = sorted({name for name in self.optimizers if self.optimizers.count(name) > 1})
        if repeated:
            raise SettingError(
                "optimizer", f"must name each optimizer once, but repeats {', '.join(repeated)}"
            )

    @staticmethod
    def _check_models(models: tuple[str, ...]) -> None:
        if not models:
            raise SettingError("model", "must name at least one model, but got none")
        for model in models:
            trainer_check("model", model=model)
        repeated = sorted({name for name in models if models.count(name) > 1})
        if repeated:
            raise SettingError(
                "model", f"must name each model once, but repeats {', '.join(repeated)}"
            )

    def _check_setting(self, setting: str) -> None:
        value = getattr(self, setting)
        if value is None:
            return
        users = [
            name
            for name in self.optimizers
            if setting == "lr" or setting in OPTIMIZER_SETTINGS[name]
        ]
        if not users:
            everyone = [name for name, used in OPTIMIZER_SETTINGS.items() if setting in used]
            raise SettingError(
                setting,
                f"is set, but none of the optimizers {', '.join(self.optimizers)} uses it; "
                f"it applies only to: {', '.join(everyone)}",
            )
        keys = (f"{setting}.low", f"{setting}.high") if isinstance(value, Range) else (setting,)
        for key, bound in zip(keys, bounds(value)):
            trainer_check(key, optimizer=users[0], **{setting: bound})


@dataclass(frozen=True)
class SamplerSettings:
    kind: str = "tpe"  # one of SAMPLER_KEYS
    multivariate: bool = True  # TPE: model the parameters jointly, since lr and eps interact
    constant_liar: bool = True  # TPE: count running trials as bad, so parallel workers spread out
    startup_trials: int = 10  # random trials before the model takes over (TPE, GP, CMA-ES)

    def __post_init__(self) -> None:
        check_types(self)
        check_kind(self.kind, SAMPLER_KEYS)
        check_at_least("startup_trials", self.startup_trials, 0)


@dataclass(frozen=True)
class PrunerSettings:
    kind: str = "median"  # one of PRUNER_KEYS; "none" runs every trial to the end
    warmup_epochs: int = 2  # median/percentile: epochs a trial runs before it can be pruned
    startup_trials: int = 5  # median/percentile: finished trials before pruning starts
    percentile: float = 25.0  # percentile: keep trials in the top this-many percent at each epoch
    min_epochs: int = 1  # halving/hyperband/asha: the smallest budget a trial gets (the first rung)
    # halving/hyperband/asha: one trial in this many goes on to the next rung
    reduction_factor: int = 3

    def __post_init__(self) -> None:
        check_types(self)
        check_kind(self.kind, PRUNER_KEYS)
        check_at_least("warmup_epochs", self.warmup_epochs, 0)
        check_at_least("startup_trials", self.startup_trials, 0)
        if not 0 < self.percentile < 100:
            raise SettingError("percentile", f"must be in (0, 100), but got {self.percentile}")
        check_at_least("min_epochs", self.min_epochs, 1)
        check_at_least("reduction_factor", self.reduction_factor, 2)


@dataclass(frozen=True)
class HeartbeatSettings:
    interval_seconds: int = 30  # how often a running trial tells the storage it is alive
    grace_seconds: int = 120  # silence after which its worker counts as dead and the trial fails
    max_retries: int = 2  # times a lineage is queued again after a fault (a dead worker, a bug)

    def __post_init__(self) -> None:
        check_types(self)
        check_within("interval_seconds", self.interval_seconds, 1, MAX_HEARTBEAT_SECONDS)
        check_within("grace_seconds", self.grace_seconds, 1, MAX_GRACE_SECONDS)
        if not self.grace_seconds > self.interval_seconds:
            raise SettingError(
                "grace_seconds",
                f"must exceed interval_seconds={self.interval_seconds}, "
                f"but got {self.grace_seconds}",
            )
        check_at_least("max_retries", self.max_retries, 0)


@dataclass(frozen=True)
class CheckpointSettings:
    # A folder every worker can reach, so a retry on another machine resumes where a dead worker
    # stopped; unset: --checkpoint-dir, then $HPSEARCH_CHECKPOINTS, then the user cache folder.
    dir: str | None = None
    every_epochs: int | None = None  # write one every N epochs...
    # ...and/or every S seconds of training: a ResNet-18 checkpoint is 130-170 MB, so on a fast GPU
    # every epoch would cost more than the 5% of a trial we allow for them.
    every_seconds: float | None = 120.0

    def __post_init__(self) -> None:
        check_types(self)
        if self.dir is not None:
            check_folder_text("dir", self.dir)
        if self.every_epochs is not None:
            check_at_least("every_epochs", self.every_epochs, 1)
        if self.every_seconds is not None and not self.every_seconds > 0:
            raise SettingError("every_seconds", f"must be positive, but got {self.every_seconds}")


_TRAIN_DEFAULTS = TrainConfig()


@dataclass(frozen=True)
class TrainSettings:
    """What every trial of a study trains with: TrainConfig's settings but the SEARCHED ones.

    image_size and batch_size come from [data], seed from [study], the rest from [train]; a
    trial's TrainConfig is these plus its sampled or queued factors (`StudyConfig.train_config`).
    The defaults are TrainConfig's own, and TrainConfig judges the values at a point
    the study reaches.
    """

    image_size: int = _TRAIN_DEFAULTS.image_size  # px
    batch_size: int = _TRAIN_DEFAULTS.batch_size
    epochs: int = _TRAIN_DEFAULTS.epochs
    model: str = _TRAIN_DEFAULTS.model  # every trial's, unless [space] or [[points]] name models
    nesterov: bool = _TRAIN_DEFAULTS.nesterov  # sgd only
    weight_decay: float = _TRAIN_DEFAULTS.weight_decay
    schedule: str = _TRAIN_DEFAULTS.schedule
    warmup_epochs: float = _TRAIN_DEFAULTS.warmup_epochs
    label_smoothing: float = _TRAIN_DEFAULTS.label_smoothing
    min_scale: float = _TRAIN_DEFAULTS.min_scale
    seed: int = _TRAIN_DEFAULTS.seed  # a trial trains with seed + its first attempt's number

    def __post_init__(self) -> None:
        check_types(self)
        trainer_check("model", model=self.model, image_size=self.image_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def bounds(value: float | Range) -> tuple[float, ...]:
    return (value.low, value.high) if isinstance(value, Range) else (value,)


def allows(param: float | Range, value: float) -> bool:
    return value in param if isinstance(param, Range) else value == param


def describe_param(value: float | Range) -> str:
    return f"[{value.low:g}, {value.high:g}]" if isinstance(value, Range) else f"fixed at {value:g}"


def describe_point(point: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in point.items())
