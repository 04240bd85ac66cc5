"""Each command's --help speaks of that command: a flag its help text names is one the command
takes, and a default comes from a place the command reads. `run --help` once said its --data came
"as the study file or --config says", and `evaluate --help` its --image-size "as the study file,
--config or the weights say": run has no --config, evaluate neither."""

from __future__ import annotations

import re

import pytest

from docs.gen.cli import subcommand_parsers
from search.cli import build_parser

PARSERS = subcommand_parsers(build_parser())
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
QUOTED = re.compile(r"`[^`]*`")  # `hpsearch train --config`: another command's flag, so named


def _own_flags(name: str) -> set[str]:
    return {flag for action in PARSERS[name]._actions for flag in action.option_strings}


def _flags_named_in_help(name: str) -> set[str]:
    helps = [QUOTED.sub("", action.help or "") for action in PARSERS[name]._actions]
    return {flag for text in helps for flag in FLAG.findall(text)}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_a_flag_the_help_names_is_one_the_command_takes(name):
    assert _flags_named_in_help(name) - _own_flags(name) == set()


@pytest.mark.parametrize(
    ("name", "flag", "absent"),
    [
        ("run", "--data", "--config"),
        ("evaluate", "--image-size", "study file"),
        ("train", "--epochs", "study file"),
        ("train", "--checkpoint-dir", "worker"),
        ("export", "--checkpoint-dir", "train-DATE-TIME"),
    ],
)
def test_a_default_is_said_to_come_from_what_the_command_reads(name, flag, absent):
    [action] = [action for action in PARSERS[name]._actions if flag in action.option_strings]
    assert absent not in action.help
