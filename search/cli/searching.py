"""`hpsearch run`, `worker` and `status`: run a study
to its budget, join one, see where it stands."""

from __future__ import annotations

import argparse
import json

from search import locations
from search.cli.common import Command, runs_from
from search.results.status import format_status, study_status
from search.study.storage import open_storage


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        help="local worker processes in all (default: one per GPU, or 1 on a CPU-only machine)",
    )
    parser.add_argument("--gpus", type=_gpu_list, help="GPUs to use, e.g. 0,2 (default: all)")
    parser.add_argument(
        "--workers-per-gpu", type=int, default=1, help="workers on each GPU (default 1)"
    )
    parser.add_argument("--trials", type=int, help="the study's trial budget, over all workers")
    parser.add_argument("--epochs", type=int, help="epochs per trial")
    parser.add_argument("--image-size", type=int, help="px")
    parser.add_argument(
        "--create-only",
        action="store_true",
        help="create the study (or check it against the study file), set --trials, and exit "
        "without training: what a cluster runs once before its workers join",
    )


def _worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--worker-index",
        type=int,
        default=None,
        help="distinct per worker; seeds this worker's sampler (default: from host and pid)",
    )


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", help="only this study")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _status(args: argparse.Namespace) -> int:
    storage = open_storage(locations.storage_url(args.storage), create=False)
    rows = study_status(storage, args.study)  # a mistyped storage is refused, not created
    print(json.dumps(rows, indent=2) if args.json else format_status(rows))
    return 0


def _gpu_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected GPU numbers like 0,2 but got {text!r}"
        ) from None


COMMANDS = {
    "run": Command(
        "create or resume a study and run it to its budget",
        _run_arguments,
        runs_from("search.cli.searching_run", "run"),
        shared=("study workers", "log format", "storage"),
    ),
    "worker": Command(
        "join an existing study and run trials until its budget is met",
        _worker_arguments,
        runs_from("search.cli.searching_run", "worker"),
        shared=("study workers", "log format", "storage"),
    ),
    "status": Command(
        "studies in a storage and their trials", _status_arguments, _status, shared=("storage",)
    ),
}
