"""What the source of a settings dataclass says about each field beyond its type and default: the
comments beside and above it, and the rules its checks enforce, read from the error messages
they raise (`SettingError("trials", "must be at least 1, but got ...")` says "must be at least 1").

The house style makes this reliable: every check names its key and says "must ..., but got ...",
so the rule is the text before ", but got". Only calls with a literal key are read; a check
whose key is computed (SearchSpace's per-optimizer checks) is left to the prose."""

from __future__ import annotations

import ast
import functools
import inspect
import io
import re
import sys
import textwrap
import tokenize
from collections import defaultdict
from typing import Any

# A constant named in a comment ("one of SAMPLER_KEYS") is shown as its values.
CONSTANT_NAME = re.compile(r"\b[A-Z][A-Z0-9_]{2,}\b")
# "interval_seconds=interval_seconds" where a message showed the value of the key it names.
ECHOED_VALUE = re.compile(r"\b(\w+)=\1\b")


def module_of(cls: type) -> Any:
    return sys.modules[cls.__module__]


@functools.cache
def field_comments(cls: type) -> dict[str, str]:
    """Each annotated field's comments: the comment lines right above it, then the one after it."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments, comment_lines = _comments(source)
    found = {}
    [class_node] = ast.parse(source).body
    assert isinstance(class_node, ast.ClassDef)
    for node in class_node.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        line = node.lineno - 1
        while line in comment_lines:
            above.insert(0, comments[line])
            line -= 1
        beside = [
            comments[number]
            for number in range(node.lineno, (node.end_lineno or node.lineno) + 1)
            if number in comments and number not in comment_lines
        ]
        text = " ".join([*above, *beside])
        if text:
            found[node.target.id] = with_constants_shown(text, cls)
    return found


def _comments(source: str) -> tuple[dict[int, str], set[int]]:
    """Every comment by line, and the lines that hold nothing but a comment."""
    comments, whole_lines = {}, set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
            if not token.line[: token.start[1]].strip():
                whole_lines.add(token.start[0])
    return comments, whole_lines


def with_constants_shown(text: str, cls: type) -> str:
    module = module_of(cls)

    def shown(match: re.Match[str]) -> str:
        value = getattr(module, match.group(), None)
        if isinstance(value, (dict, tuple, list, frozenset)) and all(
            isinstance(item, str) for item in value
        ):
            return ", ".join(f"`{item}`" for item in value)
        return match.group()

    # A field left out of a study file is None in the dataclass; the file's reader says "unset".
    return re.sub(r"\bNone\b", "unset", CONSTANT_NAME.sub(shown, text))


class Checks:
    """What a class's checks say, by key: rules (text), the allowed values (enums) and the keys
    judged by another class's checks (trainer_check: TrainConfig's)."""

    def __init__(self) -> None:
        self.rules: dict[str, list[str]] = defaultdict(list)
        self.choices: dict[str, tuple[str, ...]] = {}
        self.judged_by_trainer: set[str] = set()


@functools.cache
def checks(cls: type) -> Checks:
    """The checks in every method of cls: the calls that name a literal key."""
    found = Checks()
    module = module_of(cls)
    source = textwrap.dedent(inspect.getsource(cls))
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            _read_check(node.func.id, node, module, found)
    return found


def _read_check(function: str, call: ast.Call, module: Any, found: Checks) -> None:
    args = call.args
    if function == "check_at_least" and _literal(args[0]) is not None:
        found.rules[_literal(args[0])].append(f"must be at least {_value(args[2], module)}")
    elif function == "check_at_most" and _literal(args[0]) is not None:
        found.rules[_literal(args[0])].append(f"must be at most {_value(args[2], module)}")
    elif function in ("_check_positive",):
        for arg in args[1:]:
            found.rules[_literal(arg)].append("must be positive")
    elif function == "check_kind" and isinstance(args[1], ast.Name):
        found.choices["kind"] = tuple(getattr(module, args[1].id))
    elif function == "trainer_check" and _literal(args[0]) is not None:
        found.judged_by_trainer.add(_literal(args[0]))
    elif function == "SettingError" and len(args) >= 2 and _literal(args[0]) is not None:
        _add_rule(found, _literal(args[0]), _text(args[1], module))
    elif function == "ConfigError" and args:
        _read_config_error(args[0], module, found)
    elif function == "check_within" and _literal(args[0]) is not None:
        for bound, limit in (("at least", args[2]), ("at most", args[3])):
            found.rules[_literal(args[0])].append(f"must be {bound} {_value(limit, module)}")
    elif function == "_refuse" and _literal(args[0]) is not None:  # TrainConfig's one refusal
        _add_rule(found, _literal(args[0]), f"must be {_text(args[2], module)}")
    elif function == "_check_range" and _literal(args[0]) is not None:  # TrainConfig's ranges
        key, unit = _literal(args[0]), _literal(args[4]) if len(args) > 4 else ""
        for bound, limit in (("at least", args[2]), ("at most", args[3])):
            if _literal(limit) is not None or not isinstance(limit, ast.Constant):  # None: none
                _add_rule(found, key, f"must be {bound} {_value(limit, module)}{unit}")


def _read_config_error(message: ast.expr, module: Any, found: Checks) -> None:
    """TrainConfig's messages start with the setting: "eps must be positive, but got eps=0"; and
    "unknown schedule 'x'; choose one of: " + ", ".join(SCHEDULES) lists a setting's values."""
    if isinstance(message, ast.BinOp) and isinstance(message.right, ast.Call):
        joined = message.right
        words = _text(message.left, module).split()
        if words[:1] == ["unknown"] and joined.args and isinstance(joined.args[0], ast.Name):
            found.choices[words[1]] = tuple(getattr(module, joined.args[0].id))
        return
    key, _, rule = _text(message, module).partition(" ")
    if rule.startswith(("must ", "needs ")):
        _add_rule(found, key, rule)


def _add_rule(found: Checks, key: str, message: str) -> None:
    rule = ECHOED_VALUE.sub(r"\1", message.split(", but ")[0]).strip()
    if rule and rule not in found.rules[key]:
        found.rules[key].append(rule)
    quoted = re.fullmatch(r"must be '([^']+)'.*", rule)
    if quoted:
        found.choices[key] = (quoted.group(1),)


def _literal(node: ast.expr) -> Any:
    return node.value if isinstance(node, ast.Constant) else None


def _value(node: ast.expr, module: Any) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and isinstance(getattr(module, node.id, None), (int, float, str)):
        return getattr(module, node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr if node.value.id == "self" else ast.unparse(node)
    return ast.unparse(node)


def _text(node: ast.expr, module: Any) -> str:
    """A message as a reader sees it: placeholders of constants filled in, of fields named."""
    if isinstance(node, ast.JoinedStr):
        return "".join(
            str(part.value) if isinstance(part, ast.Constant) else str(_value(part.value, module))
            for part in node.values
            if isinstance(part, (ast.Constant, ast.FormattedValue))
        )
    return str(_value(node, module))
