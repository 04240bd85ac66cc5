"""A whole study configuration as a document: the study file's tables, resolved, as plain JSON.

A study records this document when it is created (flags such as `--epochs` applied), so the
storage alone says how its trials train: a worker joins from the study's name, and a study
file brought along is compared with it key by key. The document reads back through the study
file's own loader, so a stored configuration is checked exactly as a file is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search.errors import StudyFileError
from search.studyfile.load import study_config_from_document
from search.studyfile.sections import (
    LOG_BY_DEFAULT,
    PRUNER_KEYS,
    SAMPLER_KEYS,
    TRAIN_KEYS_ELSEWHERE,
    Range,
    SearchSpace,
)
from search.studyfile.study_config import StudyConfig
from trainer.model_names import DEFAULT_MODEL
from trainer.naming import named

# Where and how long this process runs, not what the study computes: a worker may bring its own.
# The budget is here too because the study's live budget is its own attribute (attrs.BUDGET).
LOCAL_KEYS = (
    "study.trials",
    "study.timeout_minutes",
    "study.storage",
    "study.trials_per_worker",
    "data.source",
    "checkpoint.dir",
    "checkpoint.every_epochs",
    "checkpoint.every_seconds",
)
# The sections whose keys depend on their kind (SAMPLER_KEYS, PRUNER_KEYS)
KIND_SECTIONS = ("sampler", "pruner")


def to_document(config: StudyConfig) -> dict[str, Any]:
    """The study file `config` was read from, with its overrides applied, as JSON-ready tables.

    The storage URL is left out: it may hold a password, and whoever reads the study has it.
    """
    study = dataclasses.asdict(config.study)
    study.pop("storage")
    train = {
        key: value
        for key, value in config.train.to_dict().items()
        if key not in TRAIN_KEYS_ELSEWHERE
    }
    # Studies created before a run could name its model recorded none; the default reads back the
    # same, so leaving it out keeps their documents equal to a file that does not name one.
    if train["model"] == DEFAULT_MODEL:
        del train["model"]
    document = {
        "study": study,
        "data": dataclasses.asdict(config.data),
        "train": train,
        "sampler": _kind_table(config.sampler, SAMPLER_KEYS),
        "pruner": _kind_table(config.pruner, PRUNER_KEYS),
        "heartbeat": dataclasses.asdict(config.heartbeat),
        "checkpoint": dataclasses.asdict(config.checkpoint),
        "warm_start": [dict(point) for point in config.warm_start],
        "points": [dict(point) for point in config.points],
    }
    if config.space is not None:
        document["space"] = _space_table(config.space)
    return document


def from_document(document: dict[str, Any], origin: str) -> StudyConfig:
    """The StudyConfig a stored document describes; `origin` names it in errors and messages."""
    if not isinstance(document, dict):
        raise StudyFileError(f"{origin}: the stored configuration is not a table")
    return study_config_from_document(Path(origin), _without_none(document))


def differences(
    stored: dict[str, Any],
    ours: dict[str, Any],
    ours_name: str,
    flags: Mapping[str, str] | None = None,
) -> list[str]:
    """One line per setting that differs, local keys aside: `train.epochs: 1 in the study, 6 in
    studies/quick.toml`, or `6 from --epochs` for a key in `flags` (dotted key: the keyword that
    set it, named as its caller gave it). A sampler or pruner of another kind is one line of its
    whole table: the other kind's keys are no settings the file could give (its loader refuses a
    key its kind does not read), so a line each saying "unset" there would ask for what cannot be
    written."""
    stored_flat, ours_flat = _flat(stored), _flat(ours)
    lines: dict[str, str] = {}
    for key in (set(stored_flat) | set(ours_flat)) - set(LOCAL_KEYS):
        if stored_flat.get(key) != ours_flat.get(key):
            source = f"from {named(flags[key])}" if flags and key in flags else f"in {ours_name}"
            lines[key] = _difference(key, stored_flat.get(key), ours_flat.get(key), source)
    for section in KIND_SECTIONS:
        theirs, mine = stored.get(section), ours.get(section)
        if _kind(theirs) != _kind(mine):
            lines = {key: line for key, line in lines.items() if not key.startswith(f"{section}.")}
            lines[section] = _difference(section, theirs, mine, f"in {ours_name}")
    return [lines[key] for key in sorted(lines)]


def _kind(table: Any) -> Any:
    return table.get("kind") if isinstance(table, dict) else None


def _difference(key: str, stored: Any, ours: Any, source: str) -> str:
    return f"{key}: {_shown(stored)} in the study, {_shown(ours)} {source}"


def _kind_table(settings: Any, keys_by_kind: dict[str, frozenset[str]]) -> dict[str, Any]:
    # The loader refuses a key that its kind ignores, so only the kind's own keys are written.
    used = keys_by_kind[settings.kind]
    values = dataclasses.asdict(settings)
    return {"kind": settings.kind, **{key: values[key] for key in sorted(used)}}


def _space_table(space: SearchSpace) -> dict[str, Any]:
    table: dict[str, Any] = {"optimizer": list(space.optimizers)}
    for name in LOG_BY_DEFAULT:
        value = getattr(space, name)
        if isinstance(value, Range):
            table[name] = {"low": value.low, "high": value.high, "log": value.log}
        elif value is not None:
            table[name] = value
    if space.models is not None:
        table["model"] = list(space.models)
    return table


def _without_none(document: dict[str, Any]) -> dict[str, Any]:
    # JSON keeps an unset setting as null, which the loader would read as a value; unset is absent.
    return {
        section: (
            {key: value for key, value in table.items() if value is not None}
            if isinstance(table, dict)
            else table
        )
        for section, table in document.items()
    }


def _flat(document: dict[str, Any]) -> dict[str, Any]:
    flat = {}
    for section, table in document.items():
        if isinstance(table, dict):
            for key, value in table.items():
                flat[f"{section}.{key}"] = value
        else:
            flat[section] = table
    return flat


def _shown(value: Any) -> str:
    return "unset" if value is None else repr(value)
