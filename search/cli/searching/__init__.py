"""`hpsearch run`, `worker` and `status`: run a study to its budget, join one, see where it
stands. Their handlers: workers.py (run and worker) and status.py."""

from __future__ import annotations

import argparse

from search.cli.common import Command, add_study, add_study_overrides, runs_from


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        help="local worker processes in all (default: one per GPU, or 1 on a CPU-only machine)",
    )
    parser.add_argument("--gpus", type=_gpu_list, help="GPUs to use, e.g. 0,2 (default: all)")
    parser.add_argument(
        # None: not given, so that a flag that cannot apply is refused (workers.py)
        "--workers-per-gpu",
        type=int,
        help="workers on each GPU (default 1)",
    )
    add_study_overrides(parser)
    parser.add_argument(
        "--create-only",
        action="store_true",
        help="create the study (or check it against the study file), set --trials, and exit "
        "without training: what a cluster runs once before its workers join",
    )


def _worker_arguments(parser: argparse.ArgumentParser) -> None:
    # Seeded a worker's sampler once; seeds no longer depend on it (search.study.opening
    # settle_sampler_seed). Accepted, unlisted, so that manifests and scripts written for an
    # earlier hpsearch still start their workers.
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--exit-status-if-stopped",
        type=_exit_status,
        metavar="STATUS",
        help="exit STATUS (3 to 125) instead of 0 when SIGTERM or SIGINT stopped the worker, its "
        "stopped trials queued to resume, so that a scheduler tells it from a worker whose "
        "study's budget is met (which exits 0) and starts another: `hpsearch kubernetes` "
        "passes 75, which its workers' Job replaces without counting a failure",
    )


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    add_study(parser, "optional")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _exit_status(text: str) -> int:
    """3 to 125: neither 0 (done), 1 (a bug) nor 2 (a user's error), nor what a shell reports for
    a command it could not run (126, 127) or one a signal killed (128 + N)."""
    try:
        status = int(text)
    except ValueError:
        status = -1
    if not 3 <= status <= 125:
        raise argparse.ArgumentTypeError(f"expected an exit status from 3 to 125 but got {text!r}")
    return status


def _gpu_list(text: str) -> list[int]:
    """One or more GPU numbers, each once: an empty list (`--gpus "$UNSET"`) would mean no GPU at
    all, and train on the CPU of a machine full of them."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdecimal() for part in parts):
        raise argparse.ArgumentTypeError(f"expected GPU numbers like 0,2 but got {text!r}")
    gpus = [int(part) for part in parts]
    repeated = sorted({gpu for gpu in gpus if gpus.count(gpu) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(
            f"names GPU {repeated[0]} twice; for several workers on each GPU, give "
            "--workers-per-gpu"
        )
    return gpus


COMMANDS = {
    "run": Command(
        "create or resume a study and run it to its budget",
        _run_arguments,
        runs_from("search.cli.searching.workers", "run"),
        shared=("study workers", "log format", "storage"),
    ),
    "worker": Command(
        "join an existing study and run trials until its budget is met",
        _worker_arguments,
        runs_from("search.cli.searching.workers", "worker"),
        shared=("study workers", "log format", "storage"),
    ),
    "status": Command(
        "studies in a storage and their trials",
        _status_arguments,
        runs_from("search.cli.searching.status", "status"),
        shared=("storage",),
    ),
}
