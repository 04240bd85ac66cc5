"""The checks every study-file setting goes through, and the error that names its key.

TOML hands over whatever the file says, so each field is checked against its annotation;
values of a training run are judged by `TrainConfig` itself, never by a copy of its rules.
A `SettingError` carries a dotted key, so each enclosing section adds its own name on the
way out (`space.lr.low must be positive ...`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any

from trainer.config import TrainConfig
from trainer.errors import ConfigError


class SettingError(ConfigError):
    """A bad setting named by a dotted key, so each enclosing section can add its own name."""

    def __init__(self, key: str, problem: str, *, separator: str = " "):
        self.key, self.problem, self.separator = key, problem, separator
        super().__init__(f"{key}{separator}{problem}")

    def under(self, section: str) -> SettingError:
        return SettingError(f"{section}.{self.key}", self.problem, separator=self.separator)


def build(cls: type, section: str, values: Mapping[str, Any]) -> Any:
    """Construct a settings dataclass, naming its missing or bad key within section."""
    for field in dataclasses.fields(cls):
        required = (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )
        if required and field.name not in values:
            raise SettingError(f"{section}.{field.name}", "is required")
    try:
        return cls(**values)
    except SettingError as error:
        raise error.under(section) from None


def rebuilt(section: str, settings: Any, **changes: Any) -> Any:
    """`settings` with the changes that are not None, checked again and named within section."""
    try:
        return dataclasses.replace(
            settings, **{key: value for key, value in changes.items() if value is not None}
        )
    except SettingError as error:
        raise error.under(section) from None


def trainer_check(key: str, **settings: Any) -> TrainConfig:
    """Let TrainConfig judge the values, and file its complaint under key."""
    try:
        return TrainConfig(**settings)
    except ConfigError as error:
        raise SettingError(key, str(error), separator=": ") from None


def check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """The one check for unknown keys, in sections, ranges and points alike."""
    unknown = [key for key in table if key not in allowed]
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {where}; known keys: {', '.join(sorted(allowed))}"
        )


def check_kind(kind: str, known: Mapping[str, Any]) -> None:
    if kind not in known:
        raise SettingError("kind", f"must be one of {', '.join(known)}, but got {kind!r}")


def check_at_least(key: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise SettingError(key, f"must be at least {minimum}, but got {value}")


def check_at_most(key: str, value: float, maximum: float) -> None:
    if value > maximum:
        raise SettingError(key, f"must be at most {maximum}, but got {value}")


def check_within(key: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise SettingError(key, f"must be {low} to {high}, but got {value}")


# The checks of text below are left out of the study-file reference (docs/gen/source_notes.py reads
# a settings class's own SettingErrors): they refuse what no one writes on purpose.


def check_path_text(key: str, path: str) -> None:
    """A path no file system can hold fails in a traceback wherever it is first opened."""
    if "\0" in path:
        raise SettingError(key, "holds a NUL character ('\\x00'), which no path can hold")


def check_folder_text(key: str, folder: str) -> None:
    """A folder named: "" would quietly be the default folder, and "  " a folder of spaces here."""
    if not folder.strip():
        raise SettingError(
            key, "must name a folder, but got an empty string; leave it out for the default"
        )
    check_path_text(key, folder)


def check_url_text(key: str, url: str) -> None:
    """A URL escapes what it cannot print (%00); raw, a database driver fails on it in a
    traceback."""
    if not url.isprintable():
        character = next(character for character in url if not character.isprintable())
        raise SettingError(
            key,
            "must be a database URL of printable characters (escape others as %XX), but it "
            f"holds the unprintable character {ascii(character)}",
        )


def check_types(settings: Any, rename: Mapping[str, str] | None = None) -> None:
    """Check each field against its annotation."""
    settings_class: type = type(settings)
    for name, hint in hints(settings_class).items():
        check_type((rename or {}).get(name, name), getattr(settings, name), hint)


def check_type(key: str, value: Any, hint: Any) -> None:
    options = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType)
        else (hint,)
    )
    if not any(_fits(value, option) for option in options):
        wanted = " or ".join(_wanted(option) for option in options if option is not type(None))
        raise SettingError(key, f"must be {wanted}, but got {value!r} ({_got(value)})")
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingError(key, f"must be a finite number, but got {value}")
    if float in options and _beyond_floats(value):
        # TOML's integers have no bound, and every later step (the trainer's checks, Optuna's
        # records) takes the number as a float, which such an integer overflows
        raise SettingError(
            key, f"must be a finite number, but got an integer of {len(str(abs(value)))} digits"
        )


def _beyond_floats(value: Any) -> bool:
    return isinstance(value, int) and abs(value) > sys.float_info.max


def _fits(value: Any, hint: Any) -> bool:
    if hint is type(None):
        return value is None
    if hint in (int, float) and isinstance(value, bool):  # bool is an int to Python, not to a user
        return False
    if hint is float:
        return isinstance(value, (int, float))
    if typing.get_origin(hint) is tuple:
        return isinstance(value, tuple) and all(
            _fits(item, typing.get_args(hint)[0]) for item in value
        )
    return isinstance(value, hint)


WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _wanted(hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        return f"a list of {_wanted(typing.get_args(hint)[0]).removeprefix('a ')}s"
    # A settings class may say how a message should name it (Range: "a range { low, high, log }").
    return str(
        WORDS.get(hint)
        or getattr(hint, "NAMED_IN_ERRORS", None)
        or getattr(hint, "__name__", str(hint))
    )


def _got(value: Any) -> str:
    words = {**WORDS, dict: "a table", list: "a list", tuple: "a list"}
    return words.get(type(value), type(value).__name__)


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))
