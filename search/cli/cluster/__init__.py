"""`hpsearch slurm` and `hpsearch kubernetes`: a study's workers on a cluster, as one SLURM job
array or as manifests for `kubectl apply`. Their handlers: slurm.py and kubernetes.py."""

from __future__ import annotations

import argparse
import sys

from search.cli.common import (
    Command,
    add_compile,
    add_study_overrides,
    add_trials_per_worker,
    line_flag,
    path_flag,
    runs_from,
)


def _slurm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, required=True, help="tasks in the job array")
    parser.add_argument("--concurrent", type=int, metavar="K", help="tasks running at once")
    parser.add_argument("--partition", type=line_flag)
    parser.add_argument("--account", type=line_flag)
    parser.add_argument(
        "--time",
        type=line_flag,
        help="each task's limit, in SLURM's format: minutes, MM:SS, HH:MM:SS or D-HH[:MM[:SS]]",
    )
    parser.add_argument(
        "--gpus-per-worker",
        type=int,
        help="default: 1 where --partition (else the cluster's default partition) has GPUs and "
        "--device is not cpu; 0 runs workers on the CPU",
    )
    parser.add_argument("--cpus-per-worker", type=int)
    parser.add_argument("--mem", type=line_flag, help="per task, in SLURM's format (e.g. 32G)")
    parser.add_argument(
        "--sbatch",
        action="append",
        type=line_flag,
        default=[],
        metavar="ARG",
        help="any other sbatch option",
    )
    parser.add_argument(
        "--python",
        type=line_flag,
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
        help="warn each task (SIGUSR1) this long before its time limit, so that its worker stops "
        "at a clean point and the task requeues itself (default 180, "
        "search.launch.slurm_job's DEFAULT_SIGNAL_SECONDS)",
    )
    add_study_overrides(parser)
    parser.add_argument(
        "--dry-run", action="store_true", help="print the batch script; submit nothing"
    )


def _kubernetes_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_file", type=path_flag, metavar="STUDY.toml", help="the study file")
    parser.add_argument("--workers", type=int, required=True, help="worker pods")
    parser.add_argument(
        "--image", required=True, help="the image the Dockerfile builds, e.g. REGISTRY/hpsearch:TAG"
    )
    parser.add_argument("--namespace", help="default: kubectl's current namespace")
    parser.add_argument(
        "--gpus-per-worker", type=int, default=1, help="1 (default), or 0 to train on the CPU"
    )
    parser.add_argument("--cpu", help="CPUs requested per pod, e.g. 8 or 500m")
    parser.add_argument("--memory", help="memory per pod (request and limit), e.g. 32Gi")
    parser.add_argument(
        "--data-pvc",
        metavar="NAME",
        help="a claim holding train/ and val/ at its root, mounted read-only (default: the "
        "study's Imagenette, downloaded by each pod)",
    )
    parser.add_argument(
        "--checkpoint-pvc",
        metavar="NAME",
        help="a ReadWriteMany claim for trial checkpoints (default: one is rendered)",
    )
    parser.add_argument(
        "--storage-secret",
        metavar="NAME",
        help="a Secret whose key `url` holds the storage URL (default: a PostgreSQL is rendered, "
        "with the Secret hpsearch-postgres you create)",
    )
    parser.add_argument(
        "--with-dashboard",
        action="store_true",
        help="optuna-dashboard behind a ClusterIP Service, for kubectl port-forward",
    )
    add_study_overrides(parser)
    add_compile(parser)
    add_trials_per_worker(parser)
    parser.add_argument("-o", "--output", type=path_flag, help="write the YAML here, not to stdout")


COMMANDS = {
    "slurm": Command(
        "submit a study's workers to SLURM as one job array",
        _slurm_arguments,
        runs_from("search.cli.cluster.slurm", "slurm"),
        shared=("study workers", "log format", "storage"),
        description="Check the study file, a storage the nodes can share (PostgreSQL or the gRPC "
        "proxy), the checkpoint folder and the data; create or resume the study; then submit one "
        "job array of --workers tasks, each an `hpsearch worker` on the study. The storage URL "
        "reaches the tasks through sbatch's environment, never the script.",
    ),
    "kubernetes": Command(
        "print Kubernetes manifests for a study's workers, for kubectl apply -f",
        _kubernetes_arguments,
        runs_from("search.cli.cluster.kubernetes", "kubernetes"),
        shared=("log format",),
        description="Render multi-document YAML: the study file as a ConfigMap, a Job that creates "
        "or checks the study, an Indexed Job of --workers GPU workers, a shared checkpoint claim, "
        "PostgreSQL (unless --storage-secret) and the dashboard (--with-dashboard). The storage "
        "URL comes only from a Secret you create; the YAML holds no password.",
    ),
}
