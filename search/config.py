"""Study files: `studies/NAME.toml` read into frozen dataclasses, every setting checked.

Nothing here opens a database or builds an Optuna object: a study file is checked in full
before any storage is touched, so a typo costs a second, not a half-created study. Every
error names the file and the dotted key (`studies/x.toml: space.lr.low must be positive
for a log range, but got 0`); the CLI prints it as one line and exits 2.

The dataclasses check themselves, so a notebook that builds them directly gets the same
checks; the loader only adds the file and section names to their errors. The values of a
training run are judged by `TrainConfig` itself, never by a copy of its rules.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import parse_qs, urlsplit

from trainer.config import OPTIMIZER_SETTINGS, TrainConfig
from trainer.errors import ConfigError

SECTIONS = ("study", "data", "train", "space", "sampler", "pruner", "heartbeat", "checkpoint", "warm_start",
            "points")
SEARCHED = ("optimizer", "lr", "eps", "momentum")  # what a trial samples, or a point fixes
LOG_BY_DEFAULT = {"lr": True, "eps": True, "momentum": False}  # lr and eps are scales; momentum is not
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
    "none": frozenset(),
}
# TrainConfig fields a study sets somewhere other than [train].
TRAIN_KEYS_ELSEWHERE = {"image_size": "[data]", "batch_size": "[data]", "seed": "[study]",
                        "optimizer": "[space] or [[points]]", "lr": "[space] or [[points]]",
                        "eps": "[space] or [[points]]", "momentum": "[space] or [[points]]"}
TRAIN_KEYS = tuple(field.name for field in dataclasses.fields(TrainConfig) if field.name not in TRAIN_KEYS_ELSEWHERE)
MAX_NAME_CHARS = 128
MAX_SEED = 2**32 - 1  # NumPy's limit, which Optuna's samplers inherit


class StudyFileError(ConfigError):
    """A study file is missing, malformed or holds a bad setting; the message names the file and key."""


class SettingError(ConfigError):
    """A bad setting named by a dotted key, so each enclosing section can add its own name."""

    def __init__(self, key: str, problem: str, *, separator: str = " "):
        self.key, self.problem, self.separator = key, problem, separator
        super().__init__(f"{key}{separator}{problem}")

    def under(self, section: str) -> SettingError:
        return SettingError(f"{section}.{self.key}", self.problem, separator=self.separator)


@dataclass(frozen=True)
class StudySettings:
    name: str
    trials: int  # the study's whole budget, shared by all its workers
    timeout_minutes: float | None = None  # wall clock after which no new trial starts
    seed: int = 0  # seeds the sampler and every trial's training
    storage: str | None = None  # a database URL; --storage and HPSEARCH_STORAGE take precedence
    direction: str = "maximize"  # the objective is val top-1, so only "maximize" is accepted

    def __post_init__(self) -> None:
        _check_types(self)
        if not self.name.strip() or not self.name.isprintable() or len(self.name) > MAX_NAME_CHARS:
            raise SettingError("name", f"must be 1 to {MAX_NAME_CHARS} printable characters, but got {self.name!r}")
        _check_at_least("trials", self.trials, 1)
        if self.timeout_minutes is not None and not self.timeout_minutes > 0:
            raise SettingError("timeout_minutes", f"must be positive, but got {self.timeout_minutes}")
        if not 0 <= self.seed <= MAX_SEED:
            raise SettingError("seed", f"must be in [0, {MAX_SEED}], but got {self.seed}")
        if self.storage is not None and not self.storage.strip():
            raise SettingError("storage", "must be a database URL, but got an empty string")
        if self.direction != "maximize":
            raise SettingError("direction", "must be 'maximize' (the objective is val top-1), "
                                            f"but got {self.direction!r}")


@dataclass(frozen=True)
class DataSettings:
    source: str = "imagenette-160"  # an Imagenette name, or a folder path kept as typed (relative to the cwd)
    image_size: int = 128  # px, side of the square the network sees
    batch_size: int = 64  # images per optimizer step
    per_class: int | None = None  # cap on training images per class, for quick runs
    validation_fraction: float | None = None  # score trials on a split of train, keeping the official val unseen

    def __post_init__(self) -> None:
        _check_types(self)
        if not self.source.strip():
            raise SettingError("source", "must name an Imagenette size or a folder, but got an empty string")
        _trainer_check("image_size", TrainConfig(), image_size=self.image_size)
        _trainer_check("batch_size", TrainConfig(), batch_size=self.batch_size)
        if self.per_class is not None:
            _check_at_least("per_class", self.per_class, 1)
        if self.validation_fraction is not None and not 0 < self.validation_fraction < 1:
            raise SettingError("validation_fraction", f"must be in (0, 1), but got {self.validation_fraction}")


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool  # sample evenly in log space, as scales like lr and eps need

    def __post_init__(self) -> None:
        _check_types(self)
        if self.log and not self.low > 0:
            raise SettingError("low", f"must be positive for a log range, but got {self.low}")
        if not self.low < self.high:
            raise SettingError("high", f"must be above low={self.low}, but got {self.high}")

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


Param = float | Range | None  # a fixed value, a range to search, or unset (the optimizer's default)


@dataclass(frozen=True)
class SearchSpace:
    optimizers: tuple[str, ...]
    lr: float | Range
    eps: float | Range | None = None  # only for the optimizers that use eps
    momentum: float | Range | None = None  # only for sgd

    def __post_init__(self) -> None:
        if isinstance(self.optimizers, list):  # TOML and callers give lists; a frozen config holds tuples
            object.__setattr__(self, "optimizers", tuple(self.optimizers))
        _check_types(self, rename={"optimizers": "optimizer"})
        self._check_optimizers()
        for setting in LOG_BY_DEFAULT:
            self._check_setting(setting)

    def params_for(self, optimizer: str) -> dict[str, float | Range]:
        """The lr, eps and momentum a trial with this optimizer samples or fixes; the rest stay unset."""
        used = OPTIMIZER_SETTINGS[optimizer] | {"lr"}
        return {name: getattr(self, name) for name in LOG_BY_DEFAULT
                if name in used and getattr(self, name) is not None}

    def corners(self) -> list[dict[str, Any]]:
        """Each optimizer with each combination of bounds: the extremes a trial can reach."""
        found = []
        for optimizer in self.optimizers:
            params = self.params_for(optimizer)
            for values in itertools.product(*(_bounds(value) for value in params.values())):
                found.append({"optimizer": optimizer, **dict(zip(params, values))})
        return found

    def _check_optimizers(self) -> None:
        if not self.optimizers:
            raise SettingError("optimizer", "must name at least one optimizer, but got none")
        for optimizer in self.optimizers:
            _trainer_check("optimizer", TrainConfig(), optimizer=optimizer)
        repeated = sorted({name for name in self.optimizers if self.optimizers.count(name) > 1})
        if repeated:
            raise SettingError("optimizer", f"must name each optimizer once, but repeats {', '.join(repeated)}")

    def _check_setting(self, setting: str) -> None:
        value = getattr(self, setting)
        if value is None:
            return
        users = [name for name in self.optimizers if setting == "lr" or setting in OPTIMIZER_SETTINGS[name]]
        if not users:
            everyone = [name for name, used in OPTIMIZER_SETTINGS.items() if setting in used]
            raise SettingError(setting, f"is set, but none of the optimizers {', '.join(self.optimizers)} uses it; "
                                        f"it applies only to: {', '.join(everyone)}")
        keys = (f"{setting}.low", f"{setting}.high") if isinstance(value, Range) else (setting,)
        for key, bound in zip(keys, _bounds(value)):
            _trainer_check(key, TrainConfig(), optimizer=users[0], **{setting: bound})


@dataclass(frozen=True)
class SamplerSettings:
    kind: str = "tpe"  # one of SAMPLER_KEYS
    multivariate: bool = True  # TPE: model the parameters jointly, since lr and eps interact
    constant_liar: bool = True  # TPE: count running trials as bad, so parallel workers spread out
    startup_trials: int = 10  # random trials before the model takes over (TPE, GP, CMA-ES)

    def __post_init__(self) -> None:
        _check_types(self)
        _check_kind(self.kind, SAMPLER_KEYS)
        _check_at_least("startup_trials", self.startup_trials, 0)


@dataclass(frozen=True)
class PrunerSettings:
    kind: str = "median"  # one of PRUNER_KEYS; "none" runs every trial to the end
    warmup_epochs: int = 2  # median/percentile: epochs a trial runs before it can be pruned
    startup_trials: int = 5  # median/percentile: finished trials before pruning starts
    percentile: float = 25.0  # percentile: keep trials in the top this-many percent at each epoch
    min_epochs: int = 1  # halving/hyperband: the smallest budget a trial gets
    reduction_factor: int = 3  # halving/hyperband: one trial in this many goes on to the next rung

    def __post_init__(self) -> None:
        _check_types(self)
        _check_kind(self.kind, PRUNER_KEYS)
        _check_at_least("warmup_epochs", self.warmup_epochs, 0)
        _check_at_least("startup_trials", self.startup_trials, 0)
        if not 0 < self.percentile < 100:
            raise SettingError("percentile", f"must be in (0, 100), but got {self.percentile}")
        _check_at_least("min_epochs", self.min_epochs, 1)
        _check_at_least("reduction_factor", self.reduction_factor, 2)


@dataclass(frozen=True)
class HeartbeatSettings:
    interval_seconds: int = 30  # how often a running trial tells the storage it is alive
    grace_seconds: int = 120  # silence after which its worker counts as dead and the trial fails
    max_retries: int = 2  # times a failed trial of a dead worker is queued again

    def __post_init__(self) -> None:
        _check_types(self)
        _check_at_least("interval_seconds", self.interval_seconds, 1)
        if not self.grace_seconds > self.interval_seconds:
            raise SettingError("grace_seconds", f"must exceed interval_seconds={self.interval_seconds}, "
                                                f"but got {self.grace_seconds}")
        _check_at_least("max_retries", self.max_retries, 0)


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
        _check_types(self)
        if self.every_epochs is not None:
            _check_at_least("every_epochs", self.every_epochs, 1)
        if self.every_seconds is not None and not self.every_seconds > 0:
            raise SettingError("every_seconds", f"must be positive, but got {self.every_seconds}")


@dataclass(frozen=True)
class StudyConfig:
    path: Path  # the study file, as the user named it
    study: StudySettings
    data: DataSettings
    # The study's fixed training settings with data.image_size, data.batch_size and study.seed.
    # Its optimizer, lr, eps and momentum are placeholders: train_config() sets them per trial.
    train: TrainConfig
    space: SearchSpace | None = None  # None for a study that only runs its points
    sampler: SamplerSettings = dataclasses.field(default_factory=SamplerSettings)
    pruner: PrunerSettings = dataclasses.field(default_factory=PrunerSettings)
    heartbeat: HeartbeatSettings = dataclasses.field(default_factory=HeartbeatSettings)
    checkpoint: CheckpointSettings = dataclasses.field(default_factory=CheckpointSettings)
    warm_start: tuple[dict[str, Any], ...] = ()  # known-good points queued before the search
    points: tuple[dict[str, Any], ...] = ()  # a factor study's points, each queued once as a trial

    def __post_init__(self) -> None:
        for name in ("warm_start", "points"):  # frozen: a list from a caller becomes a tuple
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._check_train_matches()
        self._check_plan()
        if self.space is not None:
            self._check_space(self.space)
        self._check_points("points", self.points)
        self._check_points("warm_start", self.warm_start)

    def train_config(self, params: Mapping[str, Any]) -> TrainConfig:
        """One trial's training settings: the study's fixed ones with the searched ones from params."""
        return self.train.replace(optimizer=params["optimizer"], lr=params["lr"],
                                  eps=params.get("eps"), momentum=params.get("momentum"))

    def with_overrides(self, *, trials: int | None = None, epochs: int | None = None, data: str | None = None,
                       image_size: int | None = None, storage: str | None = None) -> StudyConfig:
        """This study with command-line flags applied (None keeps the file's value), checked again.

        A storage URL given here may hold a password: a flag does not end up in a file.
        """
        given = {name: value for name, value in (("trials", trials), ("epochs", epochs), ("data", data),
                                                  ("image_size", image_size), ("storage", storage))
                 if value is not None}
        try:
            return self._replaced(**given)
        except ConfigError as error:
            raise StudyFileError(f"{self.path} with overrides ({', '.join(given)}): {error}") from None

    def _replaced(self, *, trials: int | None = None, epochs: int | None = None, data: str | None = None,
                  image_size: int | None = None, storage: str | None = None) -> StudyConfig:
        study = _rebuilt("study", self.study, trials=trials, storage=storage)
        data_settings = _rebuilt("data", self.data, source=data, image_size=image_size)
        if epochs is not None:
            _check_type("train.epochs", epochs, int)
        train = _trainer_check("train", self.train, image_size=data_settings.image_size,
                               epochs=self.train.epochs if epochs is None else epochs)
        return dataclasses.replace(self, study=study, data=data_settings, train=train)

    def _check_train_matches(self) -> None:
        for name, owner, value in (("image_size", "data", self.data.image_size),
                                   ("batch_size", "data", self.data.batch_size), ("seed", "study", self.study.seed)):
            if getattr(self.train, name) != value:
                raise SettingError(f"train.{name}", f"must equal {owner}.{name}={value}, which sets it, "
                                                    f"but got {getattr(self.train, name)}")

    def _check_plan(self) -> None:
        if self.space is None and not self.points:
            raise ConfigError("a study needs a [space] to search or [[points]] to run, but this one has neither")
        if self.space is not None and self.points:
            raise ConfigError("a study has a [space] or [[points]], not both; "
                              "to run known points before a search, list them as [[warm_start]]")
        if self.warm_start and self.space is None:
            raise ConfigError("[[warm_start]] needs a [space] to search after it; to run only these points, "
                              "list them as [[points]]")
        if self.points and self.study.trials > len(self.points):
            raise SettingError("study.trials", f"must be at most the {len(self.points)} points, since each point "
                                               f"runs once, but got {self.study.trials}")

    def _check_space(self, space: SearchSpace) -> None:
        ranges = [name for name in LOG_BY_DEFAULT if isinstance(getattr(space, name), Range)]
        if self.sampler.kind == "grid" and ranges:
            raise SettingError("sampler.kind", f"'grid' cannot search the range space.{ranges[0]}; give fixed "
                                               "values, or list the combinations as [[points]]")
        for corner in space.corners():  # [train] settings such as nesterov limit what a trial may use
            _trainer_check(f"space (at {_describe_point(corner)})", self.train, **_unset_unless_given(corner))

    def _check_points(self, name: str, points: tuple[dict[str, Any], ...]) -> None:
        first_seen: dict[tuple, int] = {}
        for index, point in enumerate(points):
            where = f"{name}[{index}]"
            params = point_to_params(point, self.train, where=where)
            if self.space is not None:
                _check_within(params, self.space, where)
            earlier = first_seen.setdefault(tuple(sorted(params.items())), index)
            if earlier != index:
                raise SettingError(where, f"repeats {name}[{earlier}]; each point runs once, so list it once")


def point_to_params(point: Mapping[str, Any], train: TrainConfig | None = None, *,
                    where: str = "point") -> dict[str, Any]:
    """Check a point (of [[points]] or [[warm_start]]) and return its params, numbers as floats.

    A point names optimizer and lr, and eps or momentum only where its optimizer uses them;
    the trainer judges it, together with the study's fixed settings when train is given.
    """
    if not isinstance(point, Mapping):
        raise SettingError(where, f"must be a table of {', '.join(SEARCHED)}, but got {point!r}")
    _check_keys(point, SEARCHED, where)
    params = {name: value for name, value in point.items() if value is not None}
    for name in ("optimizer", "lr"):
        if name not in params:
            raise SettingError(f"{where}.{name}", "is required")
    _check_type(f"{where}.optimizer", params["optimizer"], str)
    for name in ("lr", "eps", "momentum"):
        if name in params:
            _check_type(f"{where}.{name}", params[name], float)
            params[name] = float(params[name])  # Optuna records floats; TOML's `lr = 1` is an int
    base = train if train is not None else TrainConfig()
    _trainer_check(where, base, **_unset_unless_given(params))
    return params


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and check a study file; a problem raises StudyFileError naming the file and the key."""
    path = Path(path)
    document = _read_toml(path)
    try:
        return _study_config(path, document)
    except ConfigError as error:
        raise StudyFileError(f"{path}: {error}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise StudyFileError(f"{path}: cannot read the study file: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise StudyFileError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise StudyFileError(f"{path}: not valid TOML: the file is not UTF-8 text") from None


def _study_config(path: Path, document: dict[str, Any]) -> StudyConfig:
    _check_sections(document)
    points = _points(document, "points")
    space = _space(_section(document, "space", ("optimizer", *LOG_BY_DEFAULT))) if "space" in document else None
    study = _study_settings(_section(document, "study", _field_names(StudySettings)), points)
    data = _settings(document, "data", DataSettings)
    placeholder = points[0] if points else _placeholder(space)
    return StudyConfig(
        path=path, study=study, data=data, space=space,
        train=_train(_section(document, "train", TRAIN_KEYS), data, study, placeholder),
        sampler=_kind_settings(document, "sampler", SamplerSettings, SAMPLER_KEYS),
        pruner=_kind_settings(document, "pruner", PrunerSettings, PRUNER_KEYS),
        heartbeat=_settings(document, "heartbeat", HeartbeatSettings),
        checkpoint=_settings(document, "checkpoint", CheckpointSettings),
        warm_start=_points(document, "warm_start"), points=points)


def _settings(document: Mapping[str, Any], name: str, cls: type) -> Any:
    return _build(cls, name, _section(document, name, _field_names(cls)))


def _check_sections(document: Mapping[str, Any]) -> None:
    for key, value in document.items():
        if key not in SECTIONS:
            found = f"unknown section [{key}]" if isinstance(value, dict) else f"key {key!r} outside any section"
            raise ConfigError(f"{found}; known sections: {', '.join(SECTIONS)}")


def _section(document: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table, but got {table!r}")
    if name == "train":
        _refuse_misplaced_train_keys(table)
    _check_keys(table, allowed, f"[{name}]")
    return table


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """The one check for unknown keys, in sections, ranges and points alike."""
    unknown = [key for key in table if key not in allowed]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {where}; known keys: {', '.join(sorted(allowed))}")


def _refuse_misplaced_train_keys(table: Mapping[str, Any]) -> None:
    for key in table:
        if key in TRAIN_KEYS_ELSEWHERE:
            raise SettingError(f"train.{key}", f"belongs in {TRAIN_KEYS_ELSEWHERE[key]}, not in [train]")


def _points(document: Mapping[str, Any], name: str) -> tuple[dict[str, Any], ...]:
    entries = document.get(name, [])
    if not isinstance(entries, list):
        raise SettingError(name, f"must be an array of tables, written [[{name}]], but got {entries!r}")
    return tuple(point_to_params(entry, where=f"{name}[{index}]") for index, entry in enumerate(entries))


def _space(table: dict[str, Any]) -> SearchSpace:
    for name in ("optimizer", "lr"):
        if name not in table:
            raise SettingError(f"space.{name}", "is required")
    params = {name: _param(name, table[name]) for name in LOG_BY_DEFAULT if name in table}
    return _build(SearchSpace, "space", {"optimizers": table["optimizer"], **params})


def _param(name: str, value: Any) -> Any:
    """A number stays fixed; a table { low, high, log } becomes a Range; anything else fails the type check."""
    if not isinstance(value, dict):
        return value
    _check_keys(value, ("low", "high", "log"), f"space.{name}")
    return _build(Range, f"space.{name}", {"log": LOG_BY_DEFAULT[name], **value})


def _placeholder(space: SearchSpace | None) -> dict[str, Any]:
    # Any reachable point would do, as StudyConfig checks every corner; the top corner is used
    # because a lower bound of 0 momentum is the one that [train] settings (nesterov) refuse.
    # Without a space, TrainConfig's defaults stand in until StudyConfig reports what is missing.
    return space.corners()[-1] if space is not None else {}


def _unset_unless_given(params: Mapping[str, Any]) -> dict[str, Any]:
    """eps and momentum as given, else unset: a placeholder's values must not leak into another optimizer."""
    return {"eps": None, "momentum": None, **params}


def _study_settings(table: dict[str, Any], points: tuple[dict[str, Any], ...]) -> StudySettings:
    values = dict(table)
    if "trials" not in values and points:
        values["trials"] = len(points)  # a factor study runs each of its points once
    study = _build(StudySettings, "study", values)
    if study.storage is not None:
        _refuse_password(study.storage)
    return study


def _refuse_password(url: str) -> None:
    parts = urlsplit(url)
    if parts.password or "password" in parse_qs(parts.query):
        # The message leaves the URL out, so the password does not reach a terminal or a log.
        raise SettingError("study.storage", "must not hold a password, which a study file would share with "
                                            "everyone who reads it; set the HPSEARCH_STORAGE environment "
                                            "variable or pass --storage instead")


def _train(table: dict[str, Any], data: DataSettings, study: StudySettings,
           placeholder: Mapping[str, Any]) -> TrainConfig:
    hints = _hints(TrainConfig)
    for key, value in table.items():
        _check_type(f"train.{key}", value, hints[key])
    return _trainer_check("train", TrainConfig(), **table, image_size=data.image_size, batch_size=data.batch_size,
                          seed=study.seed, **_unset_unless_given(placeholder))


def _kind_settings(document: Mapping[str, Any], name: str, cls: type, keys_by_kind: dict[str, frozenset[str]]) -> Any:
    table = _section(document, name, _field_names(cls))
    kind = table.get("kind", cls.kind)
    if isinstance(kind, str) and kind in keys_by_kind:
        for key in table:
            if key != "kind" and key not in keys_by_kind[kind]:
                users = [other for other, used in keys_by_kind.items() if key in used]
                raise SettingError(f"{name}.{key}", f"does not apply to kind {kind!r}; "
                                                    f"it applies only to: {', '.join(users)}")
    return _build(cls, name, table)


def _build(cls: type, section: str, values: Mapping[str, Any]) -> Any:
    """Construct a settings dataclass, naming its missing or bad key within section."""
    for field in dataclasses.fields(cls):
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if required and field.name not in values:
            raise SettingError(f"{section}.{field.name}", "is required")
    try:
        return cls(**values)
    except SettingError as error:
        raise error.under(section) from None


def _rebuilt(section: str, settings: Any, **changes: Any) -> Any:
    try:
        return dataclasses.replace(settings, **{key: value for key, value in changes.items() if value is not None})
    except SettingError as error:
        raise error.under(section) from None


def _trainer_check(key: str, base: TrainConfig, **changes: Any) -> TrainConfig:
    """Let TrainConfig judge the values, and file its complaint under key."""
    try:
        return base.replace(**changes)
    except ConfigError as error:
        raise SettingError(key, str(error), separator=": ") from None


def _check_within(params: Mapping[str, Any], space: SearchSpace, where: str) -> None:
    if params["optimizer"] not in space.optimizers:
        raise SettingError(f"{where}.optimizer", f"must be one of space.optimizer ({', '.join(space.optimizers)}), "
                                                 f"but got {params['optimizer']!r}")
    searched = space.params_for(params["optimizer"])
    for name, value in params.items():
        if name == "optimizer":
            continue
        if name not in searched:
            raise SettingError(f"{where}.{name}", f"is not searched, since [space] has no {name}")
        allowed = searched[name]
        if not _allows(allowed, value):
            raise SettingError(f"{where}.{name}", f"must lie within space.{name} ({_describe_param(allowed)}), "
                                                  f"but got {value}")


def _check_kind(kind: str, known: Mapping[str, Any]) -> None:
    if kind not in known:
        raise SettingError("kind", f"must be one of {', '.join(known)}, but got {kind!r}")


def _check_at_least(key: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise SettingError(key, f"must be at least {minimum}, but got {value}")


def _check_types(settings: Any, rename: Mapping[str, str] | None = None) -> None:
    """Check each field against its annotation, since TOML hands over whatever the file says."""
    for name, hint in _hints(type(settings)).items():
        _check_type((rename or {}).get(name, name), getattr(settings, name), hint)


def _check_type(key: str, value: Any, hint: Any) -> None:
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if not any(_fits(value, option) for option in options):
        wanted = " or ".join(_wanted(option) for option in options if option is not type(None))
        raise SettingError(key, f"must be {wanted}, but got {value!r} ({_got(value)})")
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingError(key, f"must be a finite number, but got {value}")


def _fits(value: Any, hint: Any) -> bool:
    if hint is type(None):
        return value is None
    if hint in (int, float) and isinstance(value, bool):  # bool is an int to Python, not to a user
        return False
    if hint is float:
        return isinstance(value, (int, float))
    if typing.get_origin(hint) is tuple:
        return isinstance(value, tuple) and all(_fits(item, typing.get_args(hint)[0]) for item in value)
    return isinstance(value, hint)


def _wanted(hint: Any) -> str:
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             Range: "a range { low, high, log }"}
    if typing.get_origin(hint) is tuple:
        return f"a list of {_wanted(typing.get_args(hint)[0]).removeprefix('a ')}s"
    return words.get(hint, getattr(hint, "__name__", str(hint)))


def _got(value: Any) -> str:
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             dict: "a table", list: "a list", tuple: "a list"}
    return words.get(type(value), type(value).__name__)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


def _bounds(value: float | Range) -> tuple[float, ...]:
    return (value.low, value.high) if isinstance(value, Range) else (value,)


def _allows(param: float | Range, value: float) -> bool:
    return value in param if isinstance(param, Range) else value == param


def _describe_param(value: float | Range) -> str:
    return f"[{value.low:g}, {value.high:g}]" if isinstance(value, Range) else f"fixed at {value:g}"


def _describe_point(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in point.items())
