"""The `hpsearch` command: the only place with argparse, a thin layer over the Python API.

One parser; each group of commands (searching, cluster, training, results, serving) is a package
whose `__init__` lists its commands and their flags in a `COMMANDS` dict and whose other modules
hold the handlers, one module a command, imported when it runs (`search.cli.common.runs_from`).
Flags several commands share are declared once, in search.cli.common. Any `HpsearchError` is the
user's to fix: one line, exit 2, naming the flags the user typed where the Python API, which the
commands call, names its keywords (`flag_of`).
"""

from __future__ import annotations

import argparse
import difflib
import gc
import os
import sys
import warnings
from typing import Any, NoReturn

import optuna

from search.cli import cluster, results, searching, serving, training
from search.cli.common import Command, parent_parsers
from search.errors import USER_ERROR_EXIT, HpsearchError
from search.run.log import last_line, one_line_warnings
from search.run.version import code_version
from trainer.naming import flags_named

# In help order.
COMMANDS: dict[str, Command] = {
    **searching.COMMANDS,
    **cluster.COMMANDS,
    **training.COMMANDS,
    **results.COMMANDS,
    **serving.COMMANDS,
}


class _Parser(argparse.ArgumentParser):
    """argparse's refusals as hpsearch's other errors: one line, "hpsearch: error: ...", exit 2.
    argparse printed the command's whole usage first (ten lines for `run`); its --help has it.
    Subcommands' parsers are of this class too (add_subparsers makes them of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR_EXIT, f"hpsearch: error: {message} (see `{self.prog} --help`)\n")


class _Version(argparse.Action):
    """--version: the package's version and, in a git checkout, its commit (what every trial
    records as code_version), looked up only when asked."""

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        print(f"hpsearch {code_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(
        prog="hpsearch",
        description="Hyperparameter search for ResNet-18 on Imagenette with Optuna.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--version", action=_Version, nargs=0, help="print hpsearch's version and exit"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parents = parent_parsers()
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(
            name,
            help=command.help,
            description=command.description or command.help,
            parents=[parents[group] for group in command.shared],
            # A flag's prefix is not that flag: `worker --trials 12` was --trials-per-worker 12
            # (twelve trials fused at once), where --trials sets the budget of run and slurm
            allow_abbrev=False,
        )
        command.add_arguments(sub)
        sub.set_defaults(handler=command.run, command_parser=sub)
    return parser


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The parsed command line. A flag the command does not take is refused by the command's own
    parser, which names the command's --help and the flag it has by a similar name (`--trails`:
    did you mean --trials?); hpsearch's --help, which argparse would name, lists no flag at all."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command: argparse.ArgumentParser = args.command_parser
        near = _near(command, unknown, study_given=bool(getattr(args, "study", None)))
        command.error(
            f"unrecognized arguments: {' '.join(unknown)}{near or _elsewhere(parser, unknown)}"
        )
    return args


def _elsewhere(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """'; --trials is a flag of run, slurm and kubernetes' for the first unknown flag that other
    commands take: what the user meant is done there (a worker's budget is the study's)."""
    commands: dict[str, argparse.ArgumentParser] = next(
        action.choices for action in parser._actions if isinstance(action.choices, dict)
    )
    for flag in (text.split("=", 1)[0] for text in unknown if text.startswith("--")):
        having = [name for name, sub in commands.items() if flag in sub._option_string_actions]
        if having:
            names = " and ".join([", ".join(having[:-1]), having[-1]] if having[1:] else having)
            return f"; {flag} is a flag of {names}"
    return ""


def _near(parser: argparse.ArgumentParser, unknown: list[str], *, study_given: bool) -> str:
    """'; did you mean --trials?' for the first unknown flag that `parser` has a flag spelt
    like; '; did you mean --study quick?' for a word alone where the command names its study by
    a flag and none was given (`hpsearch status quick`)."""
    flags = [flag for action in parser._actions for flag in action.option_strings]
    for before, text in zip(["", *unknown], unknown):
        if text.startswith("--"):
            close = difflib.get_close_matches(text.split("=", 1)[0], flags, n=1)
            if close:
                return f"; did you mean {close[0]}?"
        # A word after an unknown flag is that flag's value (`--trails 3`), no study's name
        elif not (text.startswith("-") or before.startswith("-") or study_given) and (
            "--study" in flags
        ):
            return f"; did you mean --study {text}?"
    return ""


# The Python API's keywords whose flag is not --KEYWORD (with - for _): the file a command writes
KEYWORD_FLAGS = {"path": "-o"}


def flag_of(keyword: str) -> str:
    """The flag that gives the Python API's `keyword` to the function a command calls."""
    return KEYWORD_FLAGS.get(keyword, f"--{keyword.replace('_', '-')}")


# OpenMP's spin before a waiting thread sleeps, unless the user chose a policy. Its default spins so
# long that, with another job on every core, training runs at a third of its fair share of the
# CPU; 10,000 costs nothing on a quiet machine (benchmarks/busy_cpu.py, RESULTS.md "A busy CPU").
OPENMP_SPIN = {"GOMP_SPINCOUNT": "10000"}


def share_busy_cores() -> None:
    """Set OPENMP_SPIN for this process and the workers it starts, before torch loads OpenMP (the
    commands import torch when they run), unless the user set a waiting policy of their own."""
    if not {"OMP_WAIT_POLICY", *OPENMP_SPIN} & set(os.environ):
        os.environ.update(OPENMP_SPIN)


# What a shell reports for a command a closed pipe stopped (128 + SIGPIPE), as for `yes | head`
SIGPIPE_EXIT = 141


def main(argv: list[str] | None = None, *, own_process: bool = False) -> int:
    share_busy_cores()
    # Our progress line says what Optuna's log would.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    one_line_warnings()
    args = parse_command_line(argv)
    args.own_process = own_process
    try:
        with flags_named(flag_of):  # the API's checks, named as this command's user typed them
            return args.handler(args)
    # A command of workers (run, worker, slurm) ends its log in the log's format
    except HpsearchError as error:
        last_line(getattr(args, "log_format", None), "error", str(error))
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        last_line(getattr(args, "log_format", None), "interrupted")
        return 130
    except BrokenPipeError:
        # The reader of our output left (`hpsearch trials | head`), content with what it read:
        # no traceback, and nothing more written at exit to a pipe that is gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_EXIT
    except Exception as error:
        if not raised_by_an_interrupt(error):
            raise
        # A second Ctrl-C inside a library's write (torch.save's zip writer) comes out as the
        # error that library's clean-up raised on the write it cut short: the user asked to exit
        last_line(getattr(args, "log_format", None), "interrupted")
        return 130


def command() -> int:
    """`hpsearch` as a process of its own (the console script, `python -m search`): `main`, with
    what was imported frozen, this module's imports (Optuna, SQLAlchemy) now and the command's
    once its handler is imported (search.cli.common.runs_from says why). Not so in `main` alone: a
    notebook or a test calls it again and again, and what each call makes must stay collectable."""
    gc.freeze()
    return main(own_process=True)


def raised_by_an_interrupt(error: BaseException) -> bool:
    """Whether `error` was raised while a KeyboardInterrupt was being handled (in its chain of
    contexts), and so is the interrupt's doing, not a fault to show a traceback for."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__context__
    return False
