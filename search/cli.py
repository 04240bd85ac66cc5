"""The `hpsearch` command: a thin layer of argparse over the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from search import training


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpsearch", description="Hyperparameter search for ResNet-18 "
                                                                  "on Imagenette with Optuna.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser("train", help="train one configuration")
    training.add_arguments(train)
    train.set_defaults(handler=training.run_train)

    run = commands.add_parser("run", help="create or resume a study and run it to its budget")
    _add_study_arguments(run)
    run.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    run.add_argument("--trials", type=int, help="the study's trial budget, over all workers")
    run.add_argument("--epochs", type=int, help="epochs per trial")
    run.add_argument("--image-size", type=int, help="px")
    run.set_defaults(handler=_run)

    worker = commands.add_parser("worker", help="join an existing study and run trials until its budget is met")
    _add_study_arguments(worker)
    worker.add_argument("--worker-index", type=int, default=None,
                        help="distinct per worker; seeds this worker's sampler (default: from host and pid)")
    worker.set_defaults(handler=_worker)

    status = commands.add_parser("status", help="studies in a storage and their trials")
    status.add_argument("--storage", help="storage URL (default: $HPSEARCH_STORAGE or sqlite:///hpsearch.db)")
    status.add_argument("--study", help="only this study")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)
    return parser


def _add_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_file", type=Path, metavar="STUDY.toml")
    parser.add_argument("--storage", help="storage URL; overrides $HPSEARCH_STORAGE and the study file")
    parser.add_argument("--data", help="image folder, .tar.gz, or imagenette-160|320|full; overrides the study file")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--cache-dir", type=Path, help="where decoded images are cached")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _study_setup(args: argparse.Namespace, **overrides):
    from search.config import load_study_config
    from search.storage import resolve_storage_url
    from search.worker import WorkerOptions
    from trainer import resolve_device

    config = load_study_config(args.study_file).with_overrides(data=args.data, **overrides)
    resolve_device(args.device)  # a missing GPU is an error before anything is written
    url = resolve_storage_url(args.storage, config.study.storage)
    return config, WorkerOptions(url, args.device, args.cache_dir, progress=not args.no_progress)


def _run(args: argparse.Namespace) -> int:
    from search.status import format_status, study_status
    from search.worker import launch

    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, but got {args.workers}")
    config, options = _study_setup(args, trials=args.trials, epochs=args.epochs, image_size=args.image_size)
    study = launch(config, options, workers=args.workers)
    print(format_status(study_status(study._storage, config.study.name)))
    return 0


def _worker(args: argparse.Namespace) -> int:
    import os
    import socket
    import zlib

    from search.worker import run_worker

    config, options = _study_setup(args)
    index = args.worker_index
    if index is None:  # distinct across machines and processes without coordination
        index = 1 + zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 1_000_000
    ran = run_worker(config, options, worker_index=index)
    print(f"worker ran {ran} trial(s) of study {config.study.name!r}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    from search.status import format_status, study_status
    from search.storage import open_storage, resolve_storage_url

    rows = study_status(open_storage(resolve_storage_url(args.storage)), args.study)
    print(json.dumps(rows, indent=2) if args.json else format_status(rows))
    return 0


class UsageError(Exception):
    """A flag's value is out of range."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from search.config import StudyFileError
    from search.storage import StorageError
    from search.study import StudyMismatchError
    from trainer.errors import TrainerError

    return TrainerError, StudyFileError, StorageError, StudyMismatchError, LookupError, UsageError


def main(argv: list[str] | None = None) -> int:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress line says what Optuna's log would
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except _user_errors() as error:
        message = error.args[0] if isinstance(error, LookupError) and error.args else error
        print(f"hpsearch: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hpsearch: interrupted", file=sys.stderr)
        return 130
