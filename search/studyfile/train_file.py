"""Reading and writing flat settings files (TOML,
JSON or YAML) that `hpsearch train --config` takes.

`hpsearch export` writes the same format, so a search's winner retrains as it is. A
`provenance` table says where the settings came from; it is read and kept, never applied.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import tomli_w
import yaml

from search import locations
from search.studyfile.checks import SettingError, check_path_text, check_type
from trainer.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, published before it joined the standard library
    import tomli as tomllib

FORMATS = ("toml", "json", "yaml")
PROVENANCE = "provenance"
# Settings of a run that are not hyperparameters: where data, device and files are. A settings file
# may hold them beside the TrainConfig's fields.
RUN_SETTINGS = (
    "data",
    "device",
    "compile",
    "cache_dir",
    "checkpoint_dir",
    "checkpoint_every",
    "checkpoint_every_seconds",
)
# What each run setting must be in a settings file (TrainConfig judges the others): a file's value
# reaches the trainer as it is, where a wrong type fails in a traceback
RUN_SETTING_TYPES = {
    "data": str,
    "device": str,
    "compile": bool,
    "cache_dir": str,
    "checkpoint_dir": str,
    "checkpoint_every": int,
    "checkpoint_every_seconds": float,
}
RUN_PATHS = ("data", "cache_dir", "checkpoint_dir")
BYTE_ORDER_MARK = "\ufeff"
RUN_DEFAULTS = {"data": locations.DEFAULT_DATA, "device": "auto"}


def read_settings(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (settings, provenance) from a .toml, .json, .yaml or .yml file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"settings file {path} is a folder; name the .toml, .json or .yaml in it")
    if not path.is_file():
        raise ConfigError(f"settings file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x}); "
            "save it as UTF-8"
        ) from None
    except OSError as error:
        raise ConfigError(f"cannot read settings file {path}: {error.strerror}") from None
    try:
        # The byte-order mark some editors (Windows Notepad) put first: invisible, and no TOML
        values = _parse(text.removeprefix(BYTE_ORDER_MARK), format_of(path))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
        # YAML's errors point at the spot over several lines; a user-facing error is one line
        reason = " ".join(str(error).split())
        raise ConfigError(f"{path} is not valid {format_of(path).upper()}: {reason}") from None
    if values is None:  # YAML's reading of a file with nothing in it
        raise ConfigError(f"{path} is empty; it must hold a table of settings")
    if not isinstance(values, dict):
        raise ConfigError(
            f"{path} must hold a table of settings, but holds {type(values).__name__}"
        )
    _check_not_a_study_file(path, values)
    provenance = values.pop(PROVENANCE, {})
    try:
        _check_run_settings(values)
    except SettingError as error:
        raise ConfigError(f"{path}: {error}") from None
    return values, provenance


# A study file's own tables: a settings file is flat, its values those of one run
STUDY_TABLES = ("study", "space", "pruner", "sampler", "points")


def _check_not_a_study_file(path: Path, values: dict[str, Any]) -> None:
    """A study file given as settings: said as such, where its first table was read as a setting
    of the wrong type ("data must be a string, but got a table")."""
    tables = [key for key in STUDY_TABLES if isinstance(values.get(key), (dict, list))]
    if tables:
        raise ConfigError(
            f"{path} is a study file (it has a [{tables[0]}] table), not a settings file: to "
            f"retrain a study's best trial, `hpsearch export` one from the study; to search, "
            f"`hpsearch run {path}`"
        )


def _check_run_settings(values: dict[str, Any]) -> None:
    for key, kind in RUN_SETTING_TYPES.items():
        value = values.get(key)
        if value is None:  # unset, as JSON and YAML may write it
            continue
        check_type(key, value, kind)
        if key in RUN_PATHS and not value.strip():
            # "" would be the current folder, or (checkpoint_dir) a new run folder, without a word
            raise SettingError(key, "is an empty string; name a folder, or leave it out")
        if key in RUN_PATHS:
            check_path_text(key, value)


def format_of(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    fmt = "yaml" if suffix == "yml" else suffix
    if fmt not in FORMATS:
        raise ConfigError(
            f"cannot tell the format of {path}: use a .toml, .json, .yaml or .yml file"
        )
    return fmt


def dump_settings(values: dict[str, Any], fmt: str) -> str:
    if fmt == "toml":
        return tomli_w.dumps(_without_none(values))
    if fmt == "json":
        return json.dumps(values, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(values, sort_keys=False)
    raise ConfigError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def _parse(text: str, fmt: str) -> Any:
    if fmt == "toml":
        return tomllib.loads(text)
    if fmt == "json":
        return json.loads(text)
    return yaml.safe_load(text)


def _without_none(values: Any) -> Any:
    # TOML has no null: an unset setting is simply absent.
    if isinstance(values, dict):
        return {key: _without_none(value) for key, value in values.items() if value is not None}
    if isinstance(values, list):
        return [_without_none(value) for value in values]
    return values
