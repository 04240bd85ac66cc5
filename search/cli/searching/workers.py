"""What `hpsearch run` and `worker` do once parsed, and the study setup they share with `slurm`:
training, so torch, loaded only when one of them runs (search.cli.common.runs_from)."""

from __future__ import annotations

import argparse
import sys

from search import locations
from search.errors import ConfigError
from search.launch import launch
from search.results.status import format_status, study_status
from search.run.joining import StoredStudy, join
from search.run.options import WORKER_WAIT_FOR_STORAGE_SECONDS
from search.run.stopping import stop_on_signals
from search.run.worker import WorkerOptions, run_worker
from search.study.optuna_compat import storage_of
from search.studyfile import StudyConfig, load_study_config
from trainer.device import resolve_device


def run(args: argparse.Namespace) -> int:
    request, options = study_setup(
        args, 0, trials=args.trials, epochs=args.epochs, image_size=args.image_size
    )
    if args.create_only:
        study = join(request, options, create=True, trials=args.trials).study
    else:
        study = launch(
            request,
            options,
            workers=args.workers,
            gpus=args.gpus,
            workers_per_gpu=args.workers_per_gpu,
            trials=args.trials,
        )
    print(format_status(study_status(storage_of(study), study.study_name)))
    return 0


def worker(args: argparse.Namespace) -> int:
    request, options = study_setup(args, WORKER_WAIT_FOR_STORAGE_SECONDS)
    with stop_on_signals(options.log_format) as stop:
        summary = run_worker(request, options, stop=stop)
    if options.log_format is not None:
        return 0  # its log's last line said so
    print(
        f"worker finished {summary.finished} trial(s) of study {_name(request)!r}"
        + (
            f"; {summary.left_to_resume} stopped, queued to resume from their checkpoints"
            if summary.left_to_resume
            else ""
        ),
        file=sys.stderr,
    )
    return 0


def study_setup(
    args: argparse.Namespace, wait_for_storage: float, **overrides: int | None
) -> tuple[StudyConfig | StoredStudy, WorkerOptions]:
    """The study to run: its file's configuration with the flags applied, or, with --study, the
    stored study it names (read when joined); and how its workers run."""
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
    request: StudyConfig | StoredStudy
    if args.study_file is not None:
        request = load_study_config(args.study_file).with_overrides(
            data=args.data,
            trials=overrides.get("trials"),
            epochs=overrides.get("epochs"),
            image_size=overrides.get("image_size"),
        )
        url = locations.storage_url(args.storage, request.study.storage)
    else:
        _refuse_changes_to_a_stored_study(overrides)
        url = locations.storage_url(args.storage)
        request = StoredStudy(args.study, data=args.data)
    return request, WorkerOptions(
        url,
        args.device,
        args.cache_dir,
        progress=bars,
        log_format=None if bars else args.log_format,
        checkpoint_dir=args.checkpoint_dir,
        compile=args.compile,
        wait_for_storage=wait_for_storage,
        trials_per_worker=args.trials_per_worker,
    )


def _name(request: StudyConfig | StoredStudy) -> str:
    return request.study.name if isinstance(request, StudyConfig) else request.name


def _refuse_changes_to_a_stored_study(overrides: dict) -> None:
    for flag in ("epochs", "image_size"):
        if overrides.get(flag) is not None:
            raise ConfigError(
                f"--{flag.replace('_', '-')} with --study: a study trains as it was created; "
                "to train otherwise, start a new study from a study file"
            )
