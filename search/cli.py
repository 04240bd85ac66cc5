"""The `hpsearch` command: a thin layer of argparse over the Python API."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from pathlib import Path

# Modules that add a command of their own through `register(commands)`, in help order.
COMMAND_MODULES = ("search.training", "search.report", "search.export", "search.evaluate", "search.dashboard",
                   "search.grpc_proxy")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpsearch", description="Hyperparameter search for ResNet-18 "
                                                                  "on Imagenette with Optuna.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="create or resume a study and run it to its budget")
    _add_study_arguments(run)
    run.add_argument("--workers", type=int, help="local worker processes in all (default: one per GPU, "
                                                 "or 1 on a CPU-only machine)")
    run.add_argument("--gpus", type=_gpu_list, help="GPUs to use, e.g. 0,2 (default: all)")
    run.add_argument("--workers-per-gpu", type=int, default=1, help="workers on each GPU (default 1)")
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
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def _add_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_file", type=Path, metavar="STUDY.toml")
    parser.add_argument("--storage", help="storage URL; overrides $HPSEARCH_STORAGE and the study file")
    parser.add_argument("--data", help="image folder, .tar.gz, or imagenette-160|320|full; overrides the study file")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network, once per worker "
                                                              "process (its first trial pays tens of seconds)")
    parser.add_argument("--cache-dir", type=Path, help="where decoded images are cached")
    parser.add_argument("--checkpoint-dir", type=Path, help="trial checkpoints, a folder every worker can reach "
                                                          "(default: $HPSEARCH_CHECKPOINTS, the study file's "
                                                          "[checkpoint] dir, or the user cache)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _study_setup(args: argparse.Namespace, **overrides):
    from search.config import load_study_config
    from search.storage import resolve_storage_url
    from search.worker import WorkerOptions
    from trainer import resolve_device

    config = load_study_config(args.study_file).with_overrides(data=args.data, **overrides)
    resolve_device(args.device)  # a missing GPU is an error before anything is written
    url = resolve_storage_url(args.storage, config.study.storage)
    return config, WorkerOptions(url, args.device, args.cache_dir, progress=not args.no_progress,
                                 checkpoint_dir=args.checkpoint_dir, compile=args.compile)


def _run(args: argparse.Namespace) -> int:
    from search.launcher import launch
    from search.status import format_status, study_status

    config, options = _study_setup(args, trials=args.trials, epochs=args.epochs, image_size=args.image_size)
    study = launch(config, options, workers=args.workers, gpus=args.gpus, workers_per_gpu=args.workers_per_gpu)
    print(format_status(study_status(study._storage, config.study.name)))
    return 0


def _worker(args: argparse.Namespace) -> int:
    import os
    import socket
    import zlib

    from search.worker import run_worker, stop_on_signals

    config, options = _study_setup(args)
    index = args.worker_index
    if index is None:  # distinct across machines and processes without coordination
        index = 1 + zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 1_000_000
    with stop_on_signals() as stop:
        ran = run_worker(config, options, worker_index=index, stop=stop)
    print(f"worker ran {ran} trial(s) of study {config.study.name!r}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    from search.status import format_status, study_status
    from search.storage import open_storage, resolve_storage_url

    rows = study_status(open_storage(resolve_storage_url(args.storage)), args.study)
    print(json.dumps(rows, indent=2) if args.json else format_status(rows))
    return 0


def _gpu_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GPU numbers like 0,2 but got {text!r}") from None


def _user_errors() -> tuple[type[BaseException], ...]:
    from search.config import StudyFileError
    from search.export import NoFinishedTrial
    from search.launcher import LaunchError
    from search.storage import StorageError
    from search.study import StudyMismatchError, StudyNotFound
    from trainer.errors import TrainerError

    return (TrainerError, StudyFileError, StorageError, StudyMismatchError, StudyNotFound, NoFinishedTrial,
            LaunchError)


def main(argv: list[str] | None = None) -> int:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress line says what Optuna's log would
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except _user_errors() as error:
        # A LookupError's str() is its message quoted; the message itself reads better.
        message = error.args[0] if isinstance(error, LookupError) and error.args else error
        print(f"hpsearch: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hpsearch: interrupted", file=sys.stderr)
        return 130
