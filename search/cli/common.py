"""What several commands share: each shared flag declared once, by one function (`add_study`,
`add_data`, ...), the groups of them that whole sets of commands take as parent parsers (SHARED),
and the one way a command is registered.

Every module this one and the command groups (`search/cli/<group>/__init__.py`) import at the top
loads no torch: `hpsearch --help` builds every command's parser, and the commands that read a study
(status, report, export, dashboard) answer in a second or two. Each command's handler lives in its
group's folder (`search/cli/<group>/<command>.py`; run and worker share searching/workers.py) and is
named with `runs_from`, which imports its module only when that command runs."""

from __future__ import annotations

import argparse
import gc
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search import locations
from search.run.log import LOG_FORMATS
from search.run.options import WORKER_WAIT_FOR_STORAGE_SECONDS

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
        type=storage_url_flag,
        help=f"storage URL (default: ${locations.STORAGE_ENV}, then the study file's storage where "
        f"the command takes one, then {locations.DEFAULT_STORAGE}); a password is never printed",
    )


def storage_url_flag(text: str) -> str:
    """A --storage that says something: an empty one (`--storage "$UNSET_VARIABLE"`) would fall
    back to the default storage without a word."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"is empty: give a storage URL, e.g. {locations.DEFAULT_STORAGE}, or leave the flag out"
        )
    return text


def path_flag(text: str) -> Path:
    """A path that says something: an empty one (`--checkpoint-dir "$UNSET_VARIABLE"`) would be
    the current folder, written into or read from without a word."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: give a path")
    return Path(text)


def line_flag(text: str) -> str:
    """A value written on a line of its own (an `#SBATCH` directive, an address to bind): an empty
    one would write an empty setting (or bind every address), a line break a line of its own."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: give a value")
    if "\n" in text or "\r" in text:
        raise argparse.ArgumentTypeError(f"must be one line, but got {text!r}")
    return text


def _study_workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study_file",
        type=path_flag,
        nargs="?",
        metavar="STUDY.toml",
        help="the study file; leave it out and give --study to use the settings the study "
        "recorded when it was created",
    )
    add_study(parser, "optional")
    add_data(parser)
    add_run_settings(parser)
    add_trials_per_worker(parser)
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars: a line per event instead, as whenever standard error is not a "
        "terminal (a log file, docker compose, SLURM, Kubernetes)",
    )
    parser.add_argument(
        "--wait-for-storage",
        type=seconds,
        metavar="SECONDS",
        help="wait this long for a database server that is still starting (default: "
        f"{WORKER_WAIT_FOR_STORAGE_SECONDS:.0f} for worker, which a cluster starts beside its "
        "database; 0 for run)",
    )


# How many studies a command takes with --study; the flag means the same in every command.
STUDY_CARDINALITY: dict[str, dict[str, Any]] = {
    "optional": {},
    "required": {"required": True},
    "repeatable": {"required": True, "action": "append"},  # one or more
}


def add_study(parser: argparse.ArgumentParser, cardinality: str) -> None:
    """--study NAME: a study in the storage, by name, in every command that takes one; only how
    many it takes (a key of STUDY_CARDINALITY) differs."""
    parser.add_argument(
        "--study",
        metavar="NAME",
        help="a study in the storage, by name"
        + ("; repeat for several" if cardinality == "repeatable" else ""),
        **STUDY_CARDINALITY[cardinality],
    )


# The flags below mean one thing wherever they appear. Where a study file or `train --config` may
# also give the value, the flag defaults to None, "not given", for a later step to decide
# (StudyConfig.with_overrides, search.locations, the train handler's resolve_settings, for which
# `train` also sets --device's and --compile's defaults to None). Their help names the one place
# the command takes the value from otherwise (`source`): a command's --help that named the others'
# (`run` offering "--config", which it has not) would send its reader looking for a flag.
# run, worker, slurm, kubernetes: the study file (or, with --study, the study's record of it)
STUDY_FILE = "the study file"
TRAIN_CONFIG = "--config"  # train
WEIGHTS = "the weights"  # evaluate


def add_data(
    parser: argparse.ArgumentParser, *, required: bool = False, source: str = STUDY_FILE
) -> None:
    default = f" (default: from {source}, else {locations.DEFAULT_DATA})"
    parser.add_argument(
        "--data",
        type=data_flag,
        required=required,
        help="image folder with train/ and val/, a .tar.gz of one, or imagenette-160 | "
        "imagenette-320 | imagenette-full (downloaded)" + ("" if required else default),
    )


def data_flag(text: str) -> str:
    """An empty --data would read the current folder as the data set."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"is empty: give an image folder, a .tar.gz of one, or a name such as "
            f"{locations.DEFAULT_DATA}"
        )
    return text


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")


def add_compile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network, once per process (its first epoch pays tens of seconds; "
        "see benchmarks/RESULTS.md)",
    )


def add_trials_per_worker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trials-per-worker",
        type=positive_int,
        metavar="K",
        help="trials each worker trains at once, fused in one network when they share a ResNet "
        "model, image size and batch size (default: the study file's [study] trials_per_worker, "
        "else 1)",
    )


def positive_int(text: str) -> int:
    """A whole number of at least 1; argparse names the flag in the error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, but got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, but got {value}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds, 0 or more; argparse names the flag in the error."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"expected seconds, a finite number of at least 0 such as 60, but got {text!r}"
        )
    return value


def add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=path_flag, help="where decoded images are cached")


# Where the trials' checkpoints and weights are when --checkpoint-dir is not given
TRIAL_FOLDERS_DEFAULT = (
    f"${locations.CHECKPOINTS_ENV}, the study file's [checkpoint] dir, or the user cache"
)
# What --checkpoint-dir names: where a search's workers write, a train run writes, export reads
CHECKPOINT_DIR_HELP = {
    STUDY_FILE: "the trials' checkpoints and weights, in a folder every worker can reach "
    f"(default: {TRIAL_FOLDERS_DEFAULT})",
    TRAIN_CONFIG: "the run's checkpoints and weights (default: a new "
    f"{locations.RUNS_FOLDER}/train-DATE-TIME here)",
    "export": "where the workers wrote the trials' checkpoints and weights, to copy the best "
    f"trial's from (default: {TRIAL_FOLDERS_DEFAULT})",
}


def add_checkpoint_dir(parser: argparse.ArgumentParser, use: str = STUDY_FILE) -> None:
    """--checkpoint-dir, its help for `use`: a key of CHECKPOINT_DIR_HELP."""
    parser.add_argument("--checkpoint-dir", type=path_flag, help=CHECKPOINT_DIR_HELP[use])


def add_image_size(parser: argparse.ArgumentParser, source: str = STUDY_FILE) -> None:
    otherwise = "" if source == WEIGHTS else ", else 128"  # weights always record theirs
    parser.add_argument(
        "--image-size",
        type=int,
        help=f"px, the side of the square the network sees (default: from {source}{otherwise})",
    )


def add_epochs(parser: argparse.ArgumentParser, source: str = STUDY_FILE) -> None:
    what = "epochs per trial" if source == STUDY_FILE else "epochs to train"
    parser.add_argument("--epochs", type=int, help=f"{what} (default: from {source}, else 20)")


def add_trials(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, help="the study's trial budget, over all workers")


def add_run_settings(parser: argparse.ArgumentParser, source: str = STUDY_FILE) -> None:
    """Where and how a process trains, not what: --device, --compile, --cache-dir and
    --checkpoint-dir."""
    add_device(parser)
    add_compile(parser)
    add_cache_dir(parser)
    add_checkpoint_dir(parser, source)


def add_study_overrides(parser: argparse.ArgumentParser) -> None:
    """--trials, --epochs, --image-size: what a study file says, changed for this launch."""
    add_trials(parser)
    add_epochs(parser)
    add_image_size(parser)


def add_artifacts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--artifacts",
        type=path_flag,
        metavar="DIR",
        help=f"the artifact folder the dashboard serves reports from (default: "
        f"${locations.ARTIFACTS_ENV}, else artifacts/ beside a SQLite file or in the current "
        "folder)",
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
    and not before: a command that trains loads torch, and only that command should.

    In hpsearch's own process (`args.own_process`: search.cli.command), what the handler's imports
    made is then frozen: the garbage collector never walks it again, neither in the command's
    collections nor in its last ones at exit, which walked every object torch and Optuna made at
    import (2 s of CPU with the prompt held back after `import torch`, 0.3 s after Optuna, 2-core
    VM). Frozen before the command makes anything: a storage's connection held in a reference cycle
    is still collected, and closed, at exit (frozen, SQLite's -wal file stayed behind)."""

    def run(args: argparse.Namespace) -> int:
        handler = getattr(importlib.import_module(module), function)
        if getattr(args, "own_process", False):
            gc.freeze()
        return handler(args)

    return run
