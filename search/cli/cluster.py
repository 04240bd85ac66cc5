"""`hpsearch slurm`: a study's workers on a SLURM cluster, as one job array."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search.cli.common import Command, study_setup
from search.launch.slurm import (
    DEFAULT_SIGNAL_SECONDS,
    SlurmJob,
    check_shared,
    gpus_per_worker,
    sbatch_script,
    submit,
)
from search.study.storage import masked


def _slurm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, required=True, help="tasks in the job array")
    parser.add_argument("--concurrent", type=int, metavar="K", help="tasks running at once")
    parser.add_argument("--partition")
    parser.add_argument("--account")
    parser.add_argument("--time", help="each task's limit, in SLURM's format (e.g. 4:00:00)")
    parser.add_argument(
        "--gpus-per-worker",
        type=int,
        help="default: 1 where the partition has GPUs; 0 runs workers on the CPU",
    )
    parser.add_argument("--cpus-per-worker", type=int)
    parser.add_argument("--mem", help="per task, in SLURM's format (e.g. 32G)")
    parser.add_argument(
        "--sbatch", action="append", default=[], metavar="ARG", help="any other sbatch option"
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter the tasks run (default: this one, for clusters with shared homes)",
    )
    parser.add_argument(
        "--setup",
        action="append",
        default=[],
        metavar="LINE",
        help="a shell line each task runs first, e.g. 'module load cuda/12'",
    )
    parser.add_argument(
        "--signal-seconds",
        type=int,
        default=DEFAULT_SIGNAL_SECONDS,
        help="SIGTERM this long before the time limit, to checkpoint and requeue "
        f"(default {DEFAULT_SIGNAL_SECONDS})",
    )
    parser.add_argument("--trials", type=int, help="the study's trial budget, over all workers")
    parser.add_argument("--epochs", type=int, help="epochs per trial (a new study only)")
    parser.add_argument("--image-size", type=int, help="px (a new study only)")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the batch script; submit nothing"
    )


def _slurm(args: argparse.Namespace) -> int:
    config, options = study_setup(
        args, 0, trials=args.trials, epochs=args.epochs, image_size=args.image_size
    )
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
        signal_seconds=args.signal_seconds,
        extra_worker_args=_passed_on(args),
    )
    if args.dry_run:
        checkpoints = check_shared(config, options)
        print(sbatch_script(config, job, checkpoints, gpus_per_worker(job)), end="")
        return 0
    job_id, logs = submit(config, options, job, trials=args.trials)
    print(f"Submitted batch job {job_id}")
    print(
        f"follow it: hpsearch status --study {config.study.name} --storage "
        f"{masked(options.storage_url)}; squeue -j {job_id}; logs in "
        f"{logs}/hpsearch-{config.study.name}-{job_id}_*.log; stop it: scancel {job_id}",
        file=sys.stderr,
    )
    return 0


def _passed_on(args: argparse.Namespace) -> tuple[str, ...]:
    """This command's worker settings that every task's `hpsearch worker` needs too."""
    passed: list[str] = ["--compile"] if args.compile else []
    if args.cache_dir is not None:
        passed += ["--cache-dir", str(Path(args.cache_dir).absolute())]
    return tuple(passed)


COMMANDS = {
    "slurm": Command(
        "submit a study's workers to SLURM as one job array",
        _slurm_arguments,
        _slurm,
        shared=("study workers", "storage"),
        description="Check the study file, a storage the nodes can share (PostgreSQL or the gRPC "
        "proxy), the checkpoint folder and the data; create or resume the study; then submit one "
        "job array of --workers tasks, each an `hpsearch worker` on the study. The storage URL "
        "reaches the tasks through sbatch's environment, never the script.",
    ),
}
