"""What several commands share: each shared flag declared once, in a parent parser, and the one way
a command is registered.

Every module this one and the command groups (`search/cli/<group>/__init__.py`) import at the top
loads no torch: `hpsearch --help` builds every command's parser, and the commands that read a study
(status, report, export, dashboard) answer in a second or two. Each command's handler lives in its
group's folder (`search/cli/<group>/<command>.py`; run and worker share searching/workers.py) and is
named with `runs_from`, which imports its module only when that command runs."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from search import locations
from search.run.log import LOG_FORMATS

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """One `hpsearch` command: its help line, its own flags, the shared flag groups it takes (names
    in SHARED), and the function that runs it and returns the exit status."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Handler
    shared: tuple[str, ...] = ()
    description: str | None = None


def _storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        metavar="URL",
        help=f"storage URL (default: ${locations.STORAGE_ENV}, then the study file's storage where "
        f"the command takes one, then {locations.DEFAULT_STORAGE}); a password is never printed",
    )


def _study_workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study_file",
        type=Path,
        nargs="?",
        metavar="STUDY.toml",
        help="the study file; leave it out and give --study to use the settings the study "
        "recorded when it was created",
    )
    parser.add_argument(
        "--study", metavar="NAME", help="an existing study, by name, instead of a study file"
    )
    parser.add_argument(
        "--data", help="image folder, .tar.gz, or imagenette-160|320|full; overrides the study file"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network, once per worker "
        "process (its first trial pays tens of seconds)",
    )
    parser.add_argument("--cache-dir", type=Path, help="where decoded images are cached")
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        help=f"trial checkpoints, a folder every worker can reach (default: "
        f"${locations.CHECKPOINTS_ENV}, the study file's [checkpoint] dir, or the user cache)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars: a line per event instead, as whenever standard error is not a "
        "terminal (a log file, docker compose, SLURM, Kubernetes)",
    )
    parser.add_argument(
        "--wait-for-storage",
        type=float,
        metavar="SECONDS",
        help="wait this long for a database server that is still starting (default: 300 for "
        "worker, which a cluster starts beside its database; 0 for run)",
    )


def _log_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="how workers log: text (default: a progress bar on a terminal, else a line per "
        "worker start, finished trial, retry and worker end) or json (one JSON object a line, "
        "for log collectors)",
    )


# The flag groups that commands share, by name: each becomes one parent parser.
SHARED: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "storage": _storage,
    "study workers": _study_workers,
    "log format": _log_format,
}


def parent_parsers() -> dict[str, argparse.ArgumentParser]:
    parents = {}
    for name, add in SHARED.items():
        parents[name] = argparse.ArgumentParser(add_help=False)
        add(parents[name])
    return parents


def runs_from(module: str, function: str) -> Handler:
    """The handler `function` of `module` (one of search.cli), imported when its command runs
    and not before: a command that trains loads torch, and only that command should."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), function)(args)

    return run
