"""Reading a study file: TOML into `StudyConfig`, every key known and every section in its place.

Nothing here opens a database or builds an Optuna object: a study file is checked in full
before any storage is touched, so a typo costs a second, not a half-created study. Every
error names the file and the dotted key (`studies/x.toml: space.lr.low must be positive
for a log range, but got 0`); the CLI prints it as one line and exits 2.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search.errors import StudyFileError
from search.locations import STORAGE_ENV
from search.studyfile.checks import SettingError, build, check_keys, field_names
from search.studyfile.sections import (
    LOG_BY_DEFAULT,
    PRUNER_KEYS,
    SAMPLER_KEYS,
    SECTIONS,
    TRAIN_KEYS_ELSEWHERE,
    CheckpointSettings,
    DataSettings,
    HeartbeatSettings,
    PrunerSettings,
    Range,
    SamplerSettings,
    SearchSpace,
    StudySettings,
    TrainSettings,
)
from search.studyfile.study_config import StudyConfig, point_to_params, refuse_train_model_beside
from search.studyfile.train_file import BYTE_ORDER_MARK
from search.url_secrets import secrets_named
from trainer.errors import ConfigError
from trainer.naming import given, named

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, published before it joined the standard library
    import tomli as tomllib

TRAIN_KEYS = tuple(name for name in field_names(TrainSettings) if name not in TRAIN_KEYS_ELSEWHERE)


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and check a study file; a problem raises StudyFileError naming the file and the key."""
    path = Path(path)
    return study_config_from_document(path, _read_toml(path))


def holds_a_study(path: Path) -> bool:
    """Whether `path` reads as a study file (TOML with a [study] table): what a command writing a
    page or settings must not write over. Anything unreadable, or too large for one, is not."""
    try:
        if path.stat().st_size > STUDY_FILE_MOST_BYTES:
            return False
        return isinstance(_read_toml(path).get("study"), dict)
    except (OSError, StudyFileError):  # _read_toml's refusals: not readable as TOML
        return False


STUDY_FILE_MOST_BYTES = 1 << 20  # a study file is a page of TOML; a points table, a few hundred


def study_config_from_document(path: Path, document: dict[str, Any]) -> StudyConfig:
    """Check a study file's tables, however they were read (a file, a study's stored copy)."""
    try:
        return _study_config(path, document)
    except ConfigError as error:
        raise StudyFileError(f"{path}: {error}") from None


def _a_study_name(path: Path, error: OSError) -> str:
    """A hint where the missing file's name reads as a study's (`hpsearch worker quick`): the
    stored study is named by a flag, the study file by its path."""
    if not isinstance(error, FileNotFoundError) or path.suffix or len(path.parts) != 1:
        return ""
    return f"; to name a study in the storage rather than a file, give {given('study', str(path))}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
        # The byte-order mark some editors (Windows Notepad) put first: invisible, and no TOML
        return tomllib.loads(text.removeprefix(BYTE_ORDER_MARK))
    except OSError as error:
        raise StudyFileError(
            f"{path}: cannot read the study file: {error.strerror}{_a_study_name(path, error)}"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise StudyFileError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise StudyFileError(f"{path}: not valid TOML: the file is not UTF-8 text") from None


def _study_config(path: Path, document: dict[str, Any]) -> StudyConfig:
    _check_sections(document)
    points = _points(document, "points")
    space = (
        _space(_section(document, "space", ("optimizer", *LOG_BY_DEFAULT, "model")))
        if "space" in document
        else None
    )
    study = _study_settings(_section(document, "study", field_names(StudySettings)), points)
    data = _settings(document, "data", DataSettings)
    train_table = _section(document, "train", TRAIN_KEYS)
    if "model" in train_table:  # StudyConfig cannot tell the default written out from unset
        refuse_train_model_beside(train_table["model"], space, points)
    return StudyConfig(
        path=path,
        study=study,
        data=data,
        space=space,
        train=_train(train_table, data, study),
        sampler=_kind_settings(document, "sampler", SamplerSettings, SAMPLER_KEYS),
        pruner=_kind_settings(document, "pruner", PrunerSettings, PRUNER_KEYS),
        heartbeat=_settings(document, "heartbeat", HeartbeatSettings),
        checkpoint=_settings(document, "checkpoint", CheckpointSettings),
        warm_start=_points(document, "warm_start"),
        points=points,
    )


def _settings(document: Mapping[str, Any], name: str, cls: type) -> Any:
    return build(cls, name, _section(document, name, field_names(cls)))


def _check_sections(document: Mapping[str, Any]) -> None:
    for key, value in document.items():
        if key not in SECTIONS:
            found = (
                f"unknown section [{key}]"
                if isinstance(value, dict)
                else f"key {key!r} outside any section"
            )
            raise ConfigError(f"{found}; known sections: {', '.join(SECTIONS)}")


def _section(document: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table, but got {table!r}")
    if name == "train":
        _refuse_misplaced_train_keys(table)
    check_keys(table, allowed, f"[{name}]")
    return table


def _refuse_misplaced_train_keys(table: Mapping[str, Any]) -> None:
    for key in table:
        if key in TRAIN_KEYS_ELSEWHERE:
            raise SettingError(
                f"train.{key}", f"belongs in {TRAIN_KEYS_ELSEWHERE[key]}, not in [train]"
            )


def _points(document: Mapping[str, Any], name: str) -> tuple[dict[str, Any], ...]:
    entries = document.get(name, [])
    if not isinstance(entries, list):
        raise SettingError(
            name, f"must be an array of tables, written [[{name}]], but got {entries!r}"
        )
    return tuple(
        point_to_params(entry, where=f"{name}[{index}]") for index, entry in enumerate(entries)
    )


def _space(table: dict[str, Any]) -> SearchSpace:
    for name in ("optimizer", "lr"):
        if name not in table:
            raise SettingError(f"space.{name}", "is required")
    params = {name: _param(name, table[name]) for name in LOG_BY_DEFAULT if name in table}
    if "model" in table:
        params["models"] = table["model"]
    return build(SearchSpace, "space", {"optimizers": table["optimizer"], **params})


def _param(name: str, value: Any) -> Any:
    """A number stays fixed; a table { low, high, log } becomes a Range; the rest fail the types."""
    if not isinstance(value, dict):
        return value
    check_keys(value, ("low", "high", "log"), f"space.{name}")
    return build(Range, f"space.{name}", {"log": LOG_BY_DEFAULT[name], **value})


def _study_settings(table: dict[str, Any], points: tuple[dict[str, Any], ...]) -> StudySettings:
    values = dict(table)
    if "trials" not in values and points:
        values["trials"] = len(points)  # a factor study runs each of its points once
    study = build(StudySettings, "study", values)
    if study.storage is not None:
        _refuse_secret(study.storage)
    return study


def _refuse_secret(url: str) -> None:
    """Anything `masked` would hide: a study file is shared with everyone who reads it."""
    secrets = secrets_named(url)
    if secrets:
        # The message names the secret's kind but leaves the URL out: no value reaches a terminal
        raise SettingError(
            "study.storage",
            f"must not hold a secret ({', '.join(secrets)}), which a study file would share with "
            f"everyone who reads it; set the {STORAGE_ENV} environment variable or pass "
            f"{named('storage')} instead",
        )


def _train(table: dict[str, Any], data: DataSettings, study: StudySettings) -> TrainSettings:
    return build(
        TrainSettings,
        "train",
        {**table, "image_size": data.image_size, "batch_size": data.batch_size, "seed": study.seed},
    )


def _kind_settings(
    document: Mapping[str, Any],
    name: str,
    cls: type[SamplerSettings] | type[PrunerSettings],
    keys_by_kind: dict[str, frozenset[str]],
) -> Any:
    table = _section(document, name, field_names(cls))
    kind = table.get("kind", cls.kind)
    if isinstance(kind, str) and kind in keys_by_kind:
        for key in table:
            if key != "kind" and key not in keys_by_kind[kind]:
                users = [other for other, used in keys_by_kind.items() if key in used]
                raise SettingError(
                    f"{name}.{key}",
                    f"does not apply to kind {kind!r}; it applies only to: {', '.join(users)}",
                )
    return build(cls, name, table)
