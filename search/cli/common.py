"""What several commands share: each shared flag declared once, in a parent parser, and the one way
a command is registered."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from search import locations
from search.errors import ConfigError
from search.run.log import LOG_FORMATS
from search.run.worker import WorkerOptions
from search.study.create import stored_config
from search.study.storage import open_storage
from search.studyfile import StudyConfig, load_study_config
from trainer import resolve_device

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


# A worker on a cluster starts beside its database, which may take minutes to accept connections
WORKER_WAIT_FOR_STORAGE_SECONDS = 300.0


def study_setup(
    args: argparse.Namespace, wait_for_storage: float, **overrides
) -> tuple[StudyConfig, WorkerOptions]:
    """The study's configuration, from its file and flags or, with --study, from the storage."""
    if args.wait_for_storage is not None:
        wait_for_storage = args.wait_for_storage
    # A bar rewrites itself, which only a terminal shows as it should; a log gets lines.
    bars = args.log_format == "text" and not args.no_progress and sys.stderr.isatty()
    resolve_device(args.device)  # a missing GPU is an error before anything is written
    if (args.study_file is None) == (args.study is None):
        raise ConfigError(
            "give a study file (to create a study, or check it against one that exists) or "
            "--study NAME (to join or resume one as it was created), not "
            + ("both" if args.study else "neither")
        )
    if args.study_file is not None:
        config = load_study_config(args.study_file).with_overrides(data=args.data, **overrides)
        url = locations.storage_url(args.storage, config.study.storage)
    else:
        _refuse_changes_to_a_stored_study(overrides)
        url = locations.storage_url(args.storage)
        storage = open_storage(url, create=False, wait_seconds=wait_for_storage)
        config = stored_config(storage, args.study, data=args.data)
        config = config.with_overrides(trials=overrides.get("trials"))
    return config, WorkerOptions(
        url,
        args.device,
        args.cache_dir,
        progress=bars,
        log_format=None if bars else args.log_format,
        checkpoint_dir=args.checkpoint_dir,
        compile=args.compile,
        wait_for_storage=wait_for_storage,
    )


def _refuse_changes_to_a_stored_study(overrides: dict) -> None:
    for flag in ("epochs", "image_size"):
        if overrides.get(flag) is not None:
            raise ConfigError(
                f"--{flag.replace('_', '-')} with --study: a study trains as it was created; "
                "to train otherwise, start a new study from a study file"
            )
