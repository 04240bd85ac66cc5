"""The study file's sections and keys, read from the code: StudyConfig's fields name the sections'
dataclasses (search/studyfile), whose fields are the keys, with their types and defaults; their
comments and checks (source_notes.py) say what each is and what it must be.

`sections()` is the model that the reference page (`section_markdown`) and the JSON Schema
(schema.py) are both drawn from."""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from docs.gen.source_notes import checks, field_comments
from search.studyfile.document import LOCAL_KEYS
from search.studyfile.load import TRAIN_KEYS
from search.studyfile.sections import (
    LOG_BY_DEFAULT,
    PRUNER_KEYS,
    SAMPLER_KEYS,
    SEARCHED,
    SECTIONS,
    Range,
    SearchSpace,
    TrainSettings,
)
from search.studyfile.study_config import StudyConfig
from trainer.config import TrainConfig

REQUIRED = "required"
# Required of a study that searches a [space]; a study of [[points]] runs each once, so its
# budget defaults to their number (load.py, _study_settings).
REQUIRED_WITH_SPACE_ONLY = ("study", "trials")
# SearchSpace holds lists under plural names; the file names them as a trial does.
SPACE_KEYS = {"optimizers": "optimizer", "models": "model"}
# Sections whose values TrainConfig judges at every point a study reaches (study_config.py).
JUDGED_AS_TRAINING = ("train", "space", "warm_start", "points")
KINDS = {"sampler": SAMPLER_KEYS, "pruner": PRUNER_KEYS}
NAMES = {int: "integer", float: "number", bool: "true or false", str: "string"}
JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}
# What a few settings are, where the code has no comment beside them to say it (a test asks that
# every key says something; a comment in the code, where there is one, wins).
UNCOMMENTED = {
    "study.name": "the study's name in the storage; `--study NAME` finds it",
    "train.epochs": "epochs each trial trains at most (the pruner may stop it sooner)",
    "train.weight_decay": "the optimizer's weight_decay argument",
    "train.label_smoothing": "cross-entropy label smoothing",
    "space.optimizer": "the optimizers a trial chooses among",
    "points.optimizer": "the point's optimizer",
}
NUMBER = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


@dataclass(frozen=True)
class Key:
    name: str
    kind: str  # the type in words: "integer", "number or a range { low, high, log }", ...
    schema: dict[str, Any]  # JSON Schema (Draft 4) of the value, without description and default
    default: Any  # REQUIRED, None (unset) or the value
    doc: str
    rules: tuple[str, ...] = ()
    applies_to: tuple[str, ...] = ()  # [sampler] and [pruner]: the kinds that read it
    local: bool = False  # a worker may bring its own value: not compared with the study's


@dataclass(frozen=True)
class Section:
    name: str
    array: bool  # [[name]], a list of tables
    keys: tuple[Key, ...]

    @property
    def heading(self) -> str:
        return f"[[{self.name}]]" if self.array else f"[{self.name}]"


def sections() -> tuple[Section, ...]:
    hints = typing.get_type_hints(StudyConfig)
    return tuple(_section(name, _optional_of(hints[name])) for name in SECTIONS)


def _section(name: str, hint: Any) -> Section:
    if typing.get_origin(hint) is tuple:  # warm_start, points: tables of a trial's factors
        return Section(name, True, tuple(_point_key(name, key) for key in SEARCHED))
    fields = dataclasses.fields(hint)
    if hint is TrainSettings:
        fields = tuple(field for field in fields if field.name in TRAIN_KEYS)
    return Section(name, False, tuple(_field_key(name, hint, field) for field in fields))


def _field_key(section: str, cls: type, field: dataclasses.Field) -> Key:
    name = SPACE_KEYS.get(field.name, field.name) if cls is SearchSpace else field.name
    hint = typing.get_type_hints(cls)[field.name]
    judged = section in JUDGED_AS_TRAINING or name in checks(cls).judged_by_trainer
    rules = [*checks(cls).rules.get(name, ()), *(_trainer_rules(name) if judged else ())]
    choices = checks(cls).choices.get(name) or (
        checks(TrainConfig).choices.get(name) if judged else None
    )
    doc = _doc(cls, field.name, name, judged) or UNCOMMENTED.get(f"{section}.{name}", "")
    kind, schema = value_schema(hint, name, choices)
    return Key(
        name,
        kind,
        with_bounds(schema, rules),
        _default(field),
        doc,
        tuple(rules),
        _applies_to(section, name),
        f"{section}.{name}" in LOCAL_KEYS,
    )


def _doc(cls: type, field: str, key: str, judged: bool) -> str:
    """The field's own comment, and where TrainConfig judges the value, TrainConfig's comment on
    the setting too ([train] model: whose it is, and what a model name is). A [space] key says
    what it searches, which its own comment does alone where it has one."""
    own = field_comments(cls).get(field)
    trainer = field_comments(TrainConfig).get(key) if judged else None
    if cls is SearchSpace:
        return own or trainer or ""
    return "; ".join(dict.fromkeys(text for text in (own, trainer) if text))


def _point_key(section: str, name: str) -> Key:
    """A point's factor: TrainConfig's setting of that name; optimizer and lr required, as in a
    [space]."""
    hint = typing.get_type_hints(TrainConfig)[name]
    rules = _trainer_rules(name)
    kind, schema = value_schema(hint, name, checks(TrainConfig).choices.get(name))
    in_space = {
        SPACE_KEYS.get(item.name, item.name): item for item in dataclasses.fields(SearchSpace)
    }
    return Key(
        name,
        kind,
        with_bounds(schema, rules),
        REQUIRED if in_space[name].default is dataclasses.MISSING else None,
        field_comments(TrainConfig).get(name) or UNCOMMENTED.get(f"points.{name}", ""),
        tuple(rules),
    )


def _trainer_rules(name: str) -> list[str]:
    return list(checks(TrainConfig).rules.get(name, ()))


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return REQUIRED


def _applies_to(section: str, key: str) -> tuple[str, ...]:
    if section not in KINDS or key == "kind":
        return ()
    return tuple(kind for kind, keys in KINDS[section].items() if key in keys)


def _optional_of(hint: Any) -> Any:
    options = [option for option in _options(hint) if option is not type(None)]
    return options[0] if len(options) == 1 else hint


def _options(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def value_schema(hint: Any, name: str, choices: tuple[str, ...] | None) -> tuple[str, dict]:
    """The type of a key in words, and as JSON Schema; None (unset) is written by leaving it out."""
    found = [_one(option, name, choices) for option in _options(hint) if option is not type(None)]
    if len(found) == 1:
        return found[0]
    return " or ".join(words for words, _ in found), {"anyOf": [schema for _, schema in found]}


def _one(hint: Any, name: str, choices: tuple[str, ...] | None) -> tuple[str, dict]:
    if hint is Range:
        return "a range { low, high, log }", range_schema(name)
    if typing.get_origin(hint) is tuple:
        words, item = _one(typing.get_args(hint)[0], name, choices)
        words = f"list of {words}s" if "enum" not in item else words.replace("one of", "list of")
        return words, {"type": "array", "items": item, "minItems": 1}
    schema: dict[str, Any] = {"type": JSON_TYPES[hint]}
    if choices and hint is str:
        schema["enum"] = list(choices)
        return "one of " + ", ".join(f"`{choice}`" for choice in choices), schema
    return NAMES[hint], schema


def range_schema(name: str) -> dict[str, Any]:
    fields = dataclasses.fields(Range)
    comments = field_comments(Range)
    properties: dict[str, Any] = {}
    for field in fields:
        properties[field.name] = {"type": JSON_TYPES[typing.get_type_hints(Range)[field.name]]}
        if field.name in comments:
            properties[field.name]["description"] = comments[field.name]
    properties["log"]["default"] = LOG_BY_DEFAULT.get(name, False)
    return {
        "type": "object",
        "properties": properties,
        "required": [field.name for field in fields if field.name != "log"],
        "additionalProperties": False,
    }


def with_bounds(schema: dict[str, Any], rules: list[str]) -> dict[str, Any]:
    """The numeric bounds that the rules state, on the number in the schema (in a choice of a
    number or a range, on the number)."""
    bounds = bounds_of(rules)
    if not bounds:
        return schema
    if schema.get("type") in ("integer", "number"):
        return {**schema, **bounds}
    if "anyOf" in schema:
        return {"anyOf": [with_bounds(option, rules) for option in schema["anyOf"]]}
    return schema


def bounds_of(rules: list[str]) -> dict[str, Any]:
    """JSON Schema Draft 4 bounds from rules such as "must be at least 1", "must be positive",
    "must be in (0, 1]"; an end that is not a number ("[0, epochs]") is left to the text."""
    found: dict[str, Any] = {}
    for rule in rules:
        if match := re.fullmatch(rf"must be (?:at least|>=) ({NUMBER})( .*)?", rule):
            _tighten(found, "minimum", float(match.group(1)), exclusive=False)
        elif match := re.fullmatch(rf"must be at most ({NUMBER})( .*)?", rule):
            _tighten(found, "maximum", float(match.group(1)), exclusive=False)
        elif rule == "must be positive":
            _tighten(found, "minimum", 0.0, exclusive=True)
        elif match := re.fullmatch(r"must be in ([\[(])([^,]+), ([^\])]+)([\])])", rule):
            opening, low, high, closing = match.groups()
            if re.fullmatch(NUMBER, low):
                _tighten(found, "minimum", float(low), exclusive=opening == "(")
            if re.fullmatch(NUMBER, high):
                _tighten(found, "maximum", float(high), exclusive=closing == ")")
    return found


def _tighten(found: dict[str, Any], bound: str, value: float, *, exclusive: bool) -> None:
    exclusive_key = "exclusiveMinimum" if bound == "minimum" else "exclusiveMaximum"
    if bound in found:
        tighter = value > found[bound] if bound == "minimum" else value < found[bound]
        if not (tighter or (value == found[bound] and exclusive)):
            return
    found[bound] = int(value) if value.is_integer() else value
    found.pop(exclusive_key, None)
    if exclusive:
        found[exclusive_key] = True


def shown(value: Any) -> str:
    """A default as a study file writes it."""
    if value is REQUIRED:
        return "*required*"
    if value is None:
        return "*unset*"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"


def section_markdown(section: Section) -> str:
    """The section's keys as a table: type, default, what it is and the rules it is checked by."""
    rows = ["| key | type | default | what it is |", "|---|---|---|---|"]
    for key in section.keys:
        default = shown(key.default)
        if (section.name, key.name) == REQUIRED_WITH_SPACE_ONLY:
            default = "*required* with a `[space]`; with `[[points]]`, their number"
        cells = [f"`{key.name}`", key.kind, default, _described(key)]
        rows.append("| " + " | ".join(escaped_cell(cell) for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def _described(key: Key) -> str:
    parts = [sentence(key.doc)] if key.doc else []
    if key.rules:
        parts.append(sentence(capitalized("; ".join(key.rules))))
    if key.applies_to:
        parts.append("Read by " + ", ".join(f"`{kind}`" for kind in key.applies_to) + " only.")
    if key.local:
        parts.append("A worker may bring its own: not compared with the study's.")
    return " ".join(parts)


def sentence(text: str) -> str:
    """Comments start in lower case as often as not ("px, ..."), and stay so."""
    text = text.strip()
    return text + ("" if text.endswith((".", "!", "?")) else ".")


def capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def escaped_cell(text: str) -> str:
    """A table cell: pipes outside code spans escaped (inside them Markdown keeps them)."""
    parts = text.split("`")
    return "`".join(
        part if index % 2 else part.replace("|", "\\|") for index, part in enumerate(parts)
    )
