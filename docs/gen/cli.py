"""The command-line reference, read from hpsearch's own parser (`search.cli.build_parser`): every
command in help order under its group (the packages of search/cli), with its description, a
synopsis, and every argument with its help, default, choices and whether it is required or
repeatable. A flag hidden from `--help` (argparse.SUPPRESS) is hidden here too."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import search.cli
from docs.gen.study_file import escaped_cell, sentence

# The sentence of a group's docstring that names its handler modules: for developers, not users.
# A docstring may break its line inside it ("Their\nhandlers:").
HANDLERS_SENTENCE = re.compile(r"\s*(Their\s+handlers?|Its\s+handler):.*", re.DOTALL)


def subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each command, by name, in help order."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:  # argparse has no public walk over a parser's arguments
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """A command's arguments as `--help` lists them: positionals and flags, -h and hidden ones
    left out."""
    return [
        action
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and action.help != argparse.SUPPRESS
    ]


def groups() -> Iterator[tuple[ModuleType, list[str]]]:
    """Each group of commands (a package of search/cli with COMMANDS) with its commands, in the
    order `hpsearch --help` lists them."""
    packages = [
        importlib.import_module(f"search.cli.{info.name}")
        for info in pkgutil.iter_modules(search.cli.__path__)
        if info.ispkg
    ]
    with_commands = [package for package in packages if hasattr(package, "COMMANDS")]
    order = list(search.cli.COMMANDS)
    with_commands.sort(key=lambda package: min(order.index(name) for name in package.COMMANDS))
    for package in with_commands:
        yield package, [name for name in order if name in package.COMMANDS]


def cli_markdown() -> str:
    parser = search.cli.build_parser()
    parsers = subcommand_parsers(parser)
    lines = [_overview(parsers)]
    for package, names in groups():
        lines.append(f"## {package.__name__.rsplit('.', 1)[1].capitalize()}\n")
        lines.append(sentence(HANDLERS_SENTENCE.sub("", package.__doc__ or "").strip()) + "\n")
        lines.extend(command_markdown(name, parsers[name]) for name in names)
    return "\n".join(lines)


def _overview(parsers: dict[str, argparse.ArgumentParser]) -> str:
    rows = ["| command | what it does |", "|---|---|"]
    for name in parsers:
        rows.append(f"| [`{name}`](#{name}) | {escaped_cell(search.cli.COMMANDS[name].help)} |")
    return "\n".join(rows) + "\n"


def command_markdown(name: str, parser: argparse.ArgumentParser) -> str:
    command = search.cli.COMMANDS[name]
    lines = [
        f"### hpsearch {name} {{#{name}}}\n",
        sentence(command.description or command.help) + "\n",
        f"```\n{synopsis(name, parser)}\n```\n",
        "| argument | what it is | default |",
        "|---|---|---|",
    ]
    for action in arguments(parser):
        cells = [_spelled(action), _described(action), _default(action)]
        lines.append("| " + " | ".join(escaped_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def synopsis(name: str, parser: argparse.ArgumentParser) -> str:
    words = [f"hpsearch {name}"]
    for action in arguments(parser):
        if not action.option_strings:
            words.append(f"[{_metavar(action)}]" if action.nargs == "?" else _metavar(action))
        elif action.required:
            words.append(f"{action.option_strings[-1]} {_metavar(action)}")
    return " ".join([*words, "[options]"])


def _spelled(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{_metavar(action)}`"
    takes_value = action.nargs != 0
    return ", ".join(
        f"`{option} {_metavar(action)}`" if takes_value else f"`{option}`"
        for option in action.option_strings
    )


def _metavar(action: argparse.Action) -> str:
    if isinstance(action.metavar, str):
        return action.metavar
    return action.dest.upper() if action.option_strings else action.dest


def _described(action: argparse.Action) -> str:
    text = _expanded(action)
    parts = [sentence(text)] if text else []
    if action.choices is not None:
        parts.append("One of " + ", ".join(f"`{choice}`" for choice in action.choices) + ".")
    if action.required:
        parts.append("**Required.**")
    if isinstance(action, argparse._AppendAction):
        parts.append("Repeatable.")
    return " ".join(parts)


def _expanded(action: argparse.Action) -> str:
    """Help as argparse prints it: %(default)s and the like filled in, %% as %."""
    text = action.help or ""
    return text % vars(action) if "%" in text else text


def _default(action: argparse.Action) -> str:
    value: Any = action.default
    if value in (None, False, [], argparse.SUPPRESS) or action.nargs == 0:
        return ""
    if value == sys.executable:  # `slurm --python`: this machine's interpreter, not a constant
        return "the interpreter that runs hpsearch"
    return f"`{value}`"
