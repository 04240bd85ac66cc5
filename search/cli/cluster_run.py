"""What `hpsearch slurm` and `kubernetes` do once parsed: they check the data and the study as
workers will see them, so torch is loaded, only when one of them runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search.cli.searching_run import study_setup
from search.launch.kubernetes import KubernetesJob, render
from search.launch.slurm import (
    DEFAULT_SIGNAL_SECONDS,
    SlurmJob,
    check_shared,
    gpus_per_worker,
    sbatch_script,
    submit,
)
from search.run.joining import configuration
from search.study.storage import masked
from search.studyfile import load_study_config


def slurm(args: argparse.Namespace) -> int:
    request, options = study_setup(
        args, 0, trials=args.trials, epochs=args.epochs, image_size=args.image_size
    )
    given = args.signal_seconds  # None: the flag's help names the default, held here
    signal_seconds = DEFAULT_SIGNAL_SECONDS if given is None else given
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
        signal_seconds=signal_seconds,
        extra_worker_args=_passed_on(args),
    )
    if args.dry_run:
        config = configuration(request, options)
        checkpoints = check_shared(config, options)
        print(sbatch_script(config, job, checkpoints, gpus_per_worker(job)), end="")
        return 0
    job_id, logs, name = submit(request, options, job, trials=args.trials)
    print(f"Submitted batch job {job_id}")
    print(
        f"follow it: hpsearch status --study {name} --storage "
        f"{masked(options.storage_url)}; squeue -j {job_id}; logs in "
        f"{logs}/hpsearch-{name}-{job_id}_*.log; stop it: scancel {job_id}",
        file=sys.stderr,
    )
    return 0


def _passed_on(args: argparse.Namespace) -> tuple[str, ...]:
    """This command's worker settings that every task's `hpsearch worker` needs too."""
    passed: list[str] = ["--compile"] if args.compile else []
    if args.log_format != "text":
        passed += ["--log-format", args.log_format]
    if args.cache_dir is not None:
        passed += ["--cache-dir", str(Path(args.cache_dir).absolute())]
    return tuple(passed)


def kubernetes(args: argparse.Namespace) -> int:
    config = load_study_config(args.study_file).with_overrides(
        trials=args.trials, epochs=args.epochs, image_size=args.image_size
    )
    job = KubernetesJob(
        workers=args.workers,
        image=args.image,
        namespace=args.namespace,
        gpus_per_worker=args.gpus_per_worker,
        cpu=args.cpu,
        memory=args.memory,
        data_pvc=args.data_pvc,
        checkpoint_pvc=args.checkpoint_pvc,
        storage_secret=args.storage_secret,
        dashboard=args.with_dashboard,
        trials=args.trials,
        compile=args.compile,
        log_format=args.log_format,
    )
    text = render(config, job)  # every check passes before anything is printed or written
    if args.output is None:
        print(text, end="")
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}: kubectl apply -f {args.output}", file=sys.stderr)
    return 0
