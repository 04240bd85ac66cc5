"""What `hpsearch slurm` asks the cluster before it makes anything: whether the partition's nodes
have GPUs, how many tasks a job array holds, and whether sbatch takes the job array at all (`sbatch
--test-only`: a partition, time limit or resources it refuses, said before the study is made)."""

from __future__ import annotations

import shutil
import subprocess

from search.errors import LaunchError
from search.launch.slurm_job import SlurmJob

# How long a question to slurmctld may take: a busy controller answers in seconds
ASK_SECONDS = 60
# Where to see what a partition's nodes have: CPUs, memory (MB), GPUs (GRES), time limit
SINFO_HINT = "`sinfo -o '%P %c %m %G %l'` lists each partition's CPUs, memory, GPUs and time limit"


def gpus_per_worker(job: SlurmJob) -> int:
    """As asked; else none for workers told to train on the CPU; else 1 where the nodes of the
    partition the tasks run in (named, or the cluster's default) have GPUs, else 0."""
    if job.gpus_per_worker is not None:
        return job.gpus_per_worker
    if job.device == "cpu" or shutil.which("sinfo") is None:  # or a dry run away from the cluster
        return 0
    return 1 if _partition_has_gpus(job.partition) else 0


def _partition_has_gpus(partition: str | None) -> bool:
    """Whether sinfo reports gpu GRES on the nodes of `partition`, else of the default partition
    (the one sinfo marks `*`, where sbatch puts a job that names none): a GPU partition beside it
    does not make its tasks ask for a GPU."""
    command = ["sinfo", "-h", "-o", "%P|%G", *(["-p", partition] if partition else [])]
    found = subprocess.run(command, capture_output=True, text=True, timeout=ASK_SECONDS)
    for line in found.stdout.splitlines():
        name, _, gres = line.partition("|")
        ours = name.removesuffix("*") == partition if partition else name.endswith("*")
        # GRES as gpu:a100:4(S:0-1),mps:100: a gpu entry, not any word holding "gpu"
        if ours and any(entry.split(":")[0] == "gpu" for entry in gres.split(",")):
            return True
    return False


def max_array_size() -> int | None:
    """The cluster's MaxArraySize (its array indices stop one short of it), as `scontrol show
    config` reports it; None where that cannot be asked, and sbatch will judge."""
    if shutil.which("scontrol") is None:
        return None
    shown = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, timeout=ASK_SECONDS
    )
    for line in shown.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return int(value.strip())
    return None


def check_sbatch_takes(script: str, job: SlurmJob, gpus: int) -> None:
    """Refuse the job array that sbatch would refuse (an unknown partition, a time limit above
    the partition's, more CPUs, memory or GPUs than a node has), asked with `--test-only`, which
    submits nothing: before the study, its tables and the logs' folder are made."""
    done = subprocess.run(
        ["sbatch", "--test-only"], input=script, capture_output=True, text=True, timeout=ASK_SECONDS
    )
    if done.returncode != 0:
        raise LaunchError(
            f"sbatch refuses this job array: {sbatch_said(done.stderr)} (each task asks for "
            f"{_asked(job, gpus)}); nothing was submitted or made: fix the flag and run again. "
            f"{SINFO_HINT}"
        )


def sbatch_said(stderr: str) -> str:
    """sbatch's complaint in one line: its `sbatch: error:` prefixes gone, each reason once."""
    reasons: list[str] = []
    for line in stderr.splitlines():
        reason = line.strip().removeprefix("sbatch: error: ").removeprefix("allocation failure: ")
        if reason and reason not in reasons:
            reasons.append(reason)
    return "; ".join(reasons) or "no reason given"


def _asked(job: SlurmJob, gpus: int) -> str:
    """What the flags ask of the cluster for each task, as the flags that asked it."""
    asked = {
        "--partition": job.partition or "(the default)",
        "--time": job.time,
        "--cpus-per-worker": job.cpus_per_worker,
        "--mem": job.mem,
        "--gpus-per-worker": gpus,
        "--account": job.account,
    }
    flags = [f"{flag} {value}" for flag, value in asked.items() if value is not None]
    return ", ".join([*flags, *(f"--sbatch {argument}" for argument in job.sbatch)])
