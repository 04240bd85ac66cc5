"""What `hpsearch run` and `worker` do once parsed, and the study setup they share with `slurm`:
training, so torch, loaded only when one of them runs (search.cli.common.runs_from), and only once
the study file and flags have passed their checks. Both go through search.api.searching, as a
notebook does."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from search.api import searching
from search.errors import ConfigError
from search.results.status import format_status, study_status
from search.run.options import WORKER_WAIT_FOR_STORAGE_SECONDS, WorkerOptions
from search.run.request import Request, requested_name
from search.run.stopping import stop_on_signals
from search.study.optuna_compat import storage_of

# run's flags that say how its local workers run, which --create-only starts none of
WORKER_FLAGS = {
    "workers": "--workers",
    "gpus": "--gpus",
    "workers_per_gpu": "--workers-per-gpu",
    "compile": "--compile",
    "trials_per_worker": "--trials-per-worker",
}
# run's flags that place workers on GPUs, which only these devices use (search.launch.local)
GPU_FLAGS = {"gpus": "--gpus", "workers_per_gpu": "--workers-per-gpu"}
GPU_DEVICES = ("auto", "cuda")


def run(args: argparse.Namespace) -> int:
    _refuse_flags_that_do_nothing(args)
    study = searching.run_study(
        args.study_file,
        study=args.study,
        storage=args.storage,
        data=args.data,
        trials=args.trials,
        epochs=args.epochs,
        image_size=args.image_size,
        workers=args.workers,
        gpus=args.gpus,
        workers_per_gpu=1 if args.workers_per_gpu is None else args.workers_per_gpu,
        create_only=args.create_only,
        **_worker_settings(args, 0),
    )
    print(format_status(study_status(storage_of(study), study.study_name)))
    return 0


def _refuse_flags_that_do_nothing(args: argparse.Namespace) -> None:
    """A flag that cannot apply is refused, not dropped: whoever typed it expects it to act."""
    given = [
        flag for name, flag in WORKER_FLAGS.items() if getattr(args, name) not in (None, False)
    ]
    if args.create_only and given:
        raise ConfigError(
            f"--create-only starts no worker, so {given[0]} would do nothing; leave one of them out"
        )
    on_gpus = [flag for name, flag in GPU_FLAGS.items() if getattr(args, name) is not None]
    if on_gpus and args.device not in GPU_DEVICES:
        raise ConfigError(
            f"{on_gpus[0]} places workers on GPUs, which --device {args.device} does not use: "
            f"leave {on_gpus[0]} out, or give --device {' or '.join(GPU_DEVICES)}"
        )


def worker(args: argparse.Namespace) -> int:
    request, options = study_setup(args, WORKER_WAIT_FOR_STORAGE_SECONDS)
    from search.run.worker import run_worker  # torch: only once the request is checked

    with stop_on_signals(options.log_format) as stop:
        summary = run_worker(request, options, stop=stop)
    # Stopped by a signal, not by the budget: left work (its trials queued, the study's budget) to
    # a worker that a scheduler told by this status starts in its place
    status = (args.exit_status_if_stopped or 0) if stop.is_set() else 0
    if options.log_format is not None:
        return status  # its log's last line said why it ended
    print(
        f"worker finished {summary.finished} trial(s) of study {requested_name(request)!r}"
        + (
            f"; {summary.left_to_resume} stopped, queued to resume from their checkpoints"
            if summary.left_to_resume
            else ""
        ),
        file=sys.stderr,
    )
    return status


def study_setup(
    args: argparse.Namespace, wait_for_storage: float, **overrides: int | None
) -> tuple[Request, WorkerOptions]:
    """The study to run: its file's configuration with the flags applied, or, with --study, the
    stored study it names (read when joined); and how its workers run."""
    request, options = searching.checked_setup(
        args.study_file,
        study=args.study,
        storage=args.storage,
        data=args.data,
        trials=overrides.get("trials"),
        epochs=overrides.get("epochs"),
        image_size=overrides.get("image_size"),
        **_worker_settings(args, wait_for_storage),
    )
    searching.check_device(options.device)
    return request, options


def _worker_settings(args: argparse.Namespace, wait_for_storage: float) -> dict[str, Any]:
    """How a worker runs, from the flags that `run`, `worker` and `slurm` share."""
    if args.wait_for_storage is not None:
        wait_for_storage = args.wait_for_storage
    # A bar rewrites itself, which only a terminal shows as it should; a log gets lines.
    bars = args.log_format == "text" and not args.no_progress and sys.stderr.isatty()
    return {
        "device": args.device,
        "compile": args.compile,
        "cache_dir": args.cache_dir,
        "checkpoint_dir": args.checkpoint_dir,
        "trials_per_worker": args.trials_per_worker,
        "progress": bars,
        "log_format": None if bars else args.log_format,
        "wait_for_storage": wait_for_storage,
    }
