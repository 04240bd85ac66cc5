"""What `hpsearch run` and `worker` do once parsed, and the study setup they share with `slurm`:
training, so torch, loaded only when one of them runs (search.cli.common.runs_from), and only once
the study file and flags have passed their checks. Both go through search.api.searching, as a
notebook does."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

import optuna
from optuna.trial import TrialState

from search import attrs
from search.api import searching
from search.errors import SearchStopped
from search.results.status import format_status, study_status
from search.run.log import last_line
from search.run.options import WORKER_WAIT_FOR_STORAGE_SECONDS, WorkerOptions
from search.run.request import Request, requested_name
from search.run.stopping import stop_on_signals
from search.study import promotion
from search.study.optuna_compat import storage_of
from search.study.storage_flag import study_storage_flag


def run(args: argparse.Namespace) -> int:
    # A flag that cannot apply (--create-only --workers 2, --device cpu --gpus 0) is refused by
    # run_study, as a notebook's keyword is
    try:
        study = _run_study(args)
    except SearchStopped as stopped:  # as its user asked: a notebook stops there, a command ends
        study = stopped.study
    print(format_status(study_status(storage_of(study), study.study_name)))
    return _exit_status(study, args.log_format)


def _run_study(args: argparse.Namespace) -> optuna.Study:
    return searching.run_study(
        args.study_file,
        study=args.study,
        storage=args.storage,
        data=args.data,
        trials=args.trials,
        epochs=args.epochs,
        image_size=args.image_size,
        workers=args.workers,
        gpus=args.gpus,
        workers_per_gpu=args.workers_per_gpu,
        create_only=args.create_only,
        **_worker_settings(args, 0),
    )


def _exit_status(study: optuna.Study, log_format: str) -> int:
    """1, said in a line, where every trial of the study failed for good (a loss that diverged in
    each; workers killed each time until the retries were spent), else 0: a script or CI that reads
    the status must not take such a search for done."""
    trials = study.get_trials(deepcopy=False)
    counts = promotion.shown_counts(trials)
    # A stopped trial's retry failed too, for good: each lineage ended FAIL
    if not counts["fail"] or sum(counts.values()) != counts["fail"] + counts["stopped"]:
        return 0
    stopped = attrs.stopped_numbers(trials)
    first = next(
        trial
        for trial in trials
        if trial.state == TrialState.FAIL
        and trial.number not in stopped
        and not promotion.never_ran(trial)
    )
    storage = study_storage_flag(study)
    last_line(  # in a JSON log, an object as its other lines are
        log_format,
        "error",
        f"no trial of study {study.study_name!r} succeeded: all {counts['fail']} failed (trial "
        f"{first.number}: {attrs.fail_reason(first)}); `hpsearch trials --study "
        f"{shlex.quote(study.study_name)}{storage}` lists each one's fail_reason",
    )
    return 1


def worker(args: argparse.Namespace) -> int:
    request, options = study_setup(args, WORKER_WAIT_FOR_STORAGE_SECONDS)
    # Stoppable from here: a SIGTERM in torch's import (seconds) killed the worker, status 143,
    # which a Kubernetes Job counts as a failure and a SLURM task does not requeue
    with stop_on_signals(options.log_format) as stop:
        from search.run.worker import run_worker  # torch: only once the request is checked

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
