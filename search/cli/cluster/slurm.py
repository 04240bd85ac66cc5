"""What `hpsearch slurm` does once parsed: it checks the data and the study as workers will see
them, so torch is loaded, only when it runs."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from search.cli.searching.workers import study_setup
from search.launch.slurm_cluster import gpus_per_worker
from search.launch.slurm_job import SlurmJob
from search.study.storage_flag import storage_flag


def slurm(args: argparse.Namespace) -> int:
    # None: not given, so SlurmJob's default holds (DEFAULT_SIGNAL_SECONDS, named in the help)
    given = {} if args.signal_seconds is None else {"signal_seconds": args.signal_seconds}
    job = SlurmJob(
        workers=args.workers,
        concurrent=args.concurrent,
        partition=args.partition,
        account=args.account,
        time=args.time,
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=args.cpus_per_worker,
        mem=args.mem,
        sbatch=tuple(args.sbatch),
        python=args.python,
        setup=tuple(args.setup),
        device=args.device,
        extra_worker_args=_passed_on(args),
        **given,
    )
    # The tasks' --device is checked against the GPUs they ask for (SlurmJob), not against this
    # login node, which seldom has the nodes' GPUs: the study is set up here as for the CPU
    request, options = study_setup(
        argparse.Namespace(**{**vars(args), "device": "cpu"}),
        0,
        trials=args.trials,
        epochs=args.epochs,
        image_size=args.image_size,
    )
    # torch loads here (seconds), once the flags, the study file and the storage URL passed
    from search.launch.slurm import check_shared, sbatch_script, submit
    from search.run.joining import configuration

    if args.dry_run:
        config = configuration(request, options)
        checkpoints = check_shared(config, options)
        print(sbatch_script(config, job, checkpoints, gpus_per_worker(job)), end="")
        return 0
    job_id, logs, name = submit(request, options, job, trials=args.trials)
    print(f"Submitted batch job {job_id}")
    storage = storage_flag(options.storage_url)
    print(
        f"follow it: hpsearch status --study {shlex.quote(name)}{storage}; "
        f"squeue -j {job_id}; logs in {logs}; stop it: scancel {job_id}",
        file=sys.stderr,
    )
    return 0


def _passed_on(args: argparse.Namespace) -> tuple[str, ...]:
    """This command's worker settings that every task's `hpsearch worker` needs too."""
    passed: list[str] = ["--compile"] if args.compile else []
    if args.log_format != "text":
        passed += ["--log-format", args.log_format]
    if args.trials_per_worker is not None:
        passed += ["--trials-per-worker", str(args.trials_per_worker)]
    if args.cache_dir is not None:
        passed += ["--cache-dir", str(Path(args.cache_dir).absolute())]
    if args.wait_for_storage is not None:  # else the worker's own default, for a cluster
        passed += ["--wait-for-storage", _seconds_text(args.wait_for_storage)]
    return tuple(passed)


def _seconds_text(seconds: float) -> str:
    """1200 for 1200.0, as the user typed it; 2.5 stays 2.5."""
    return str(int(seconds)) if seconds.is_integer() else repr(seconds)
