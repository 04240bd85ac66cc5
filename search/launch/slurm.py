"""`hpsearch slurm`: a study's workers as one SLURM job array, one `hpsearch worker` per task.

Everything that can be checked is checked on the submitting machine before anything is
submitted: a storage that many machines can share, a checkpoint folder given on purpose (a
shared mount), the data, the database answering. The study is created or resumed here, so the
tasks only join it by name, and its settings live in the storage. The storage URL reaches the
tasks through the environment of `sbatch` (`--export`), never a command line or the script, so
a password shows in neither `scontrol show job` nor a log.

Stopping, by what sent the signal. `signal_seconds` before its time limit a task gets SIGUSR1:
the worker stops at a clean point, writes the last finished epoch, queues its trial to resume
and exits, and the task asks SLURM to requeue it. A requeue, a preemption or `scancel` sends
SIGTERM instead: the worker stops the same way and SLURM decides what follows (a second requeue
from the task would hit the task's next run). Either way the task exits with the worker's status,
so a worker that failed while stopping (a full disk) leaves its task FAILED, never requeued. A task
whose node dies is found by its heartbeat.

sbatch reads an `#SBATCH` line much as a shell reads words, except that a backslash escapes the
next character inside quotes too; its `--output` turns `%` patterns into ids, and a backslash there
turns them off and is dropped. So the lines built from names a user chose are quoted for sbatch
(`sbatch_quoted`), and a checkpoint folder whose path no `--output` can name is refused.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from search import locations
from search.errors import LaunchError
from search.run.joining import join
from search.run.options import WorkerOptions
from search.run.paths import slug
from search.run.request import Request
from search.study.storage import check_storage_url
from search.studyfile import StudyConfig
from search.url_secrets import masked
from trainer.source_names import IMAGENETTE

# Seconds before the time limit that SLURM warns a task: enough to finish a step and write a
# 130-170 MB checkpoint to a shared file system
DEFAULT_SIGNAL_SECONDS = 180
LOG_FOLDER = "slurm-logs"  # under the checkpoint folder, beside the studies' trial folders
# What a task's worker may train on: a task sees the one GPU it asked SLURM for as cuda:0
TASK_DEVICES = ("auto", "cpu", "cuda", "cuda:0")
# What no `#SBATCH --output` can name: a directive ends at the line's end, and a backslash in the
# path makes SLURM drop every backslash and leave %A and %a unexpanded
UNNAMEABLE_IN_OUTPUT = {"\n": "a line break", "\\": "a backslash"}
# The most seconds `--signal=B:USR1@SECONDS` takes: sbatch refuses more, once the study is made
MAX_SIGNAL_SECONDS = 65535
# How much sooner than asked SLURM may send that signal ("up to 60 seconds earlier", sbatch(1))
SIGNAL_EARLY_SECONDS = 60
# SLURM's time formats: minutes[:seconds], hours:minutes:seconds, days-hours[:minutes[:seconds]]
_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")


@dataclass(frozen=True)
class SlurmJob:
    """The job array's shape and resources; None leaves a setting to the cluster's default."""

    workers: int
    concurrent: int | None = None  # tasks running at once (%K)
    partition: str | None = None
    account: str | None = None
    time: str | None = None  # SLURM's format: minutes, MM:SS, HH:MM:SS, D-HH:MM
    gpus_per_worker: int | None = None  # None: 1 where the partition has GPUs, else 0
    cpus_per_worker: int | None = None
    mem: str | None = None
    sbatch: tuple[str, ...] = ()  # more `#SBATCH` arguments, as given
    python: str = sys.executable  # the interpreter the tasks run: the submitter's by default
    setup: tuple[str, ...] = ()  # shell lines before the worker starts (`module load ...`)
    signal_seconds: int = DEFAULT_SIGNAL_SECONDS
    device: str = "auto"  # the workers' --device; auto: cuda where a task has a GPU, else cpu
    extra_worker_args: tuple[str, ...] = field(default=())  # e.g. --compile, --cache-dir DIR

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise LaunchError(f"--workers must be at least 1, but got {self.workers}")
        if self.concurrent is not None and not 1 <= self.concurrent <= self.workers:
            raise LaunchError(
                f"--concurrent must be 1 to --workers={self.workers}, but got {self.concurrent}"
            )
        if self.gpus_per_worker is not None and not 0 <= self.gpus_per_worker <= 1:
            raise LaunchError(
                f"--gpus-per-worker must be 0 or 1, since a worker trains on one GPU, but got "
                f"{self.gpus_per_worker}; use more --workers to use more GPUs"
            )
        if self.cpus_per_worker is not None and self.cpus_per_worker < 1:
            raise LaunchError(
                f"--cpus-per-worker must be at least 1, but got {self.cpus_per_worker}"
            )
        if not 1 <= self.signal_seconds <= MAX_SIGNAL_SECONDS:
            raise LaunchError(
                f"--signal-seconds must be 1 to {MAX_SIGNAL_SECONDS}, but got {self.signal_seconds}"
            )
        self._check_lines()
        self._check_time_left()
        if self.device not in TASK_DEVICES:
            raise LaunchError(
                f"--device must be one of {', '.join(TASK_DEVICES)} for SLURM's tasks, but got "
                f"{self.device!r}: a task sees the one GPU it asks for as cuda:0"
            )
        if self.gpus_per_worker is not None:
            task_device(self, self.gpus_per_worker)  # the flags' own combination, before sinfo

    def _check_lines(self) -> None:
        """A setting written into a line of the script says something, on that line alone: an
        empty --python wrote a script whose every task failed, a line break a line of its own."""
        lines = {"--partition": self.partition, "--account": self.account, "--time": self.time}
        lines |= {"--mem": self.mem, "--python": self.python}
        for flag, value in [*lines.items(), *(("--sbatch", value) for value in self.sbatch)]:
            if value is not None and not value.strip():
                raise LaunchError(f"{flag} is empty: give a value")
            if value is not None and ("\n" in value or "\r" in value):
                raise LaunchError(f"{flag} must be one line, but got {value!r}")

    def _check_time_left(self) -> None:
        """A time limit the stop warning fills: each task would stop as it starts, requeued."""
        seconds = time_limit_seconds(self.time) if self.time is not None else None
        if seconds is not None and seconds <= self.signal_seconds + SIGNAL_EARLY_SECONDS:
            raise LaunchError(
                f"--time {self.time} ({seconds} s) leaves the tasks no time to train before SLURM "
                f"warns them to stop, --signal-seconds {self.signal_seconds} before it (or up to "
                f"{SIGNAL_EARLY_SECONDS} s sooner): each would stop and be requeued without end; "
                "give a longer --time or a smaller --signal-seconds"
            )


def time_limit_seconds(time: str) -> int | None:
    """A time limit in SLURM's format as seconds; None for no limit (0, UNLIMITED) or a format
    this does not read, left to sbatch to judge."""
    found = _TIME.fullmatch(time.strip())
    if found is None:
        return None
    days, *clock = found.groups()
    parts = [int(part) for part in clock if part is not None]
    if days is None and len(parts) < 3:  # minutes[:seconds]
        parts.insert(0, 0)
    hours, minutes, seconds = parts + [0] * (3 - len(parts))
    return int(days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds or None  # 0: no limit


def check_shared(config: StudyConfig, options: WorkerOptions) -> Path:
    """What the tasks on other nodes must share, refused before anything is written: a storage
    served over the network, and a checkpoint folder given on purpose. Returns that folder."""
    parsed = check_storage_url(options.storage_url)
    if parsed.drivername.startswith("sqlite"):
        raise LaunchError(
            f"storage {masked(options.storage_url)} is a SQLite file, which a job array's tasks "
            "on several nodes cannot share: SQLite on a network file system corrupts under "
            "concurrent writers. Use PostgreSQL (--storage postgresql+psycopg://user@host/db, "
            "reachable from the nodes) or the gRPC proxy (--storage grpc://host:13000)"
        )
    chosen = locations.chosen_checkpoint_root(options.checkpoint_dir, config.checkpoint.dir)
    if chosen is None:
        raise LaunchError(
            "give --checkpoint-dir (or $HPSEARCH_CHECKPOINTS, or [checkpoint] dir): a folder on a "
            "file system every node mounts, so a requeued task resumes another's trial; the "
            "default, the user cache, is local to each node"
        )
    folder = chosen.absolute()
    if not folder.is_dir():
        raise LaunchError(
            f"checkpoint folder {folder} does not exist; create it on the shared mount"
        )
    for character, name in UNNAMEABLE_IN_OUTPUT.items():
        if character in str(folder):
            raise LaunchError(
                f"checkpoint folder {str(folder)!r} has {name} in its path, which SLURM cannot "
                f"write the tasks' logs under (sbatch's --output): choose a folder without one"
            )
    return folder


def sbatch_quoted(value: str) -> str:
    """`value` as one word of an `#SBATCH` line: in double quotes, where spaces, `'` and `#` are
    plain characters and sbatch's backslash escapes `"` and itself."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def log_file(checkpoints: Path, study: str) -> str:
    """The `--output` pattern of the tasks' logs, a `%` of the folder's doubled, since SLURM would
    read it as a pattern."""
    folder = str(checkpoints / LOG_FOLDER).replace("%", "%%")
    return f"{folder}/{_log_name(study, '%A_%a')}"


def _log_name(study: str, task: str) -> str:
    """`hpsearch-NAME-812_1.log`, the task named as squeue names it. The study's name goes in as a
    slug, as in its trial folders: SLURM's %x, the job's name, would put a `/` of it in the path."""
    return f"hpsearch-{slug(study)}-{task}.log"


def sbatch_script(config: StudyConfig, job: SlurmJob, checkpoints: Path, gpus: int) -> str:
    """The batch script of the array: `#SBATCH` lines, then one `hpsearch worker` per task with
    `gpus` GPUs (0: on the CPU)."""
    name = f"hpsearch-{config.study.name}"
    array = f"0-{job.workers - 1}" + (f"%{job.concurrent}" if job.concurrent else "")
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={sbatch_quoted(name)}",
        f"#SBATCH --array={array}",
        "#SBATCH --requeue",
        f"#SBATCH --signal=B:USR1@{job.signal_seconds}",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output={sbatch_quoted(log_file(checkpoints, config.study.name))}",
        *_resources(job, gpus),
        *(f"#SBATCH {argument}" for argument in job.sbatch),
        "",
        *job.setup,
        "# torch's threads: the task's CPUs, not the node's",
        "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}",
        shlex.join(_worker_command(config, job, checkpoints, task_device(job, gpus))) + " &",
        "worker=$!",
        "# On either signal the worker writes its last finished epoch, queues its trial to resume",
        "# and exits. USR1, the time limit is near: this task asks to be requeued. TERM, SLURM",
        "# requeues, preempts or cancels it: SLURM decides what follows. The task exits as its",
        "# worker did: one that failed while stopping ends FAILED, and is not run again.",
        "stop() {",
        '    kill -TERM "$worker" 2>/dev/null',
        '    wait "$worker"',
        "    local stopped=$?",
        "    trap '' USR1 TERM  # the worker is gone: the requeue's own TERM runs no stop",
        '    if [ "$stopped" = 0 ] && [ "$1" = requeue ]; then',
        '        scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
        "    fi",
        '    exit "$stopped"',
        "}",
        "trap 'stop requeue' USR1",
        "trap 'stop' TERM",
        'wait "$worker"',
        "",
    ]
    return "\n".join(lines)


def _resources(job: SlurmJob, gpus: int) -> list[str]:
    settings = {
        "--partition": job.partition,
        "--account": job.account,
        "--time": job.time,
        "--ntasks": 1,  # one worker a task; SLURM 23.11 refuses --gpus-per-task without a count
        "--cpus-per-task": job.cpus_per_worker,
        "--gpus-per-task": gpus or None,
        "--mem": job.mem,
    }
    return [f"#SBATCH {flag}={value}" for flag, value in settings.items() if value is not None]


def _worker_command(
    config: StudyConfig, job: SlurmJob, checkpoints: Path, device: str
) -> list[str]:
    source = config.data.source
    data = source if source in IMAGENETTE else str(Path(source).absolute())
    return [
        job.python,
        "-m",
        "search",
        "worker",
        "--study",
        config.study.name,
        "--data",
        data,
        "--checkpoint-dir",
        str(checkpoints),
        "--device",
        device,
        "--no-progress",
        *job.extra_worker_args,
    ]


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
    found = subprocess.run(command, capture_output=True, text=True, timeout=60)
    for line in found.stdout.splitlines():
        name, _, gres = line.partition("|")
        ours = name.removesuffix("*") == partition if partition else name.endswith("*")
        # GRES as gpu:a100:4(S:0-1),mps:100: a gpu entry, not any word holding "gpu"
        if ours and any(entry.split(":")[0] == "gpu" for entry in gres.split(",")):
            return True
    return False


def task_device(job: SlurmJob, gpus: int) -> str:
    """The --device of every task's worker, which has `gpus` GPUs: as asked, where that fits
    them; auto is cuda with a GPU, else cpu."""
    if job.device == "auto":
        return "cuda" if gpus else "cpu"
    if job.device.startswith("cuda") and not gpus:
        where = f"partition {job.partition}" if job.partition else "the default partition"
        reason = (
            "--gpus-per-worker is 0"
            if job.gpus_per_worker == 0
            else f"sinfo reports no GPU in {where}"
        )
        raise LaunchError(
            f"--device {job.device} needs a GPU, but {reason}: give --gpus-per-worker 1, or "
            "--device cpu"
        )
    if job.device == "cpu" and gpus:
        raise LaunchError(
            "--device cpu would leave the GPU each task asks for (--gpus-per-worker 1) idle: give "
            "--gpus-per-worker 0, or leave --device out"
        )
    return job.device


class Submitted(NamedTuple):
    job_id: str
    logs: str  # the tasks' logs, as a glob
    study: str  # the study's name


def submit(
    request: Request,
    options: WorkerOptions,
    job: SlurmJob,
    *,
    trials: int | None = None,
) -> Submitted:
    """Create or resume the study, then submit the array."""
    joined = join(
        request,
        options,
        create=True,
        trials=trials,
        before_writing=lambda config: _check_submittable(config, options, job),
    )
    checkpoints = check_shared(joined.config, options)  # checked above; the folder it chose
    script = sbatch_script(joined.config, job, checkpoints, gpus_per_worker(job))
    (checkpoints / LOG_FOLDER).mkdir(exist_ok=True)
    environment = {**os.environ, locations.STORAGE_ENV: options.storage_url}
    done = subprocess.run(
        ["sbatch", "--parsable", "--export=ALL"],
        input=script,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    if done.returncode != 0:
        raise LaunchError(f"sbatch refused the job: {done.stderr.strip()}")
    job_id = done.stdout.strip().split(";")[0]
    name = joined.config.study.name
    return Submitted(job_id, str(checkpoints / LOG_FOLDER / _log_name(name, f"{job_id}_*")), name)


def _check_submittable(config: StudyConfig, options: WorkerOptions, job: SlurmJob) -> None:
    """The command's own input first, wherever it runs (as `--dry-run` checks it), then the
    place: so the one refusal away from the cluster is "go to a login node", and the command
    that gets it is one that will work there; then what this cluster holds. All before the data
    is decoded (minutes on a first run) and before a storage or study is made."""
    check_shared(config, options)
    if shutil.which("sbatch") is None:
        raise LaunchError("sbatch is not on PATH: run `hpsearch slurm` on a SLURM login node")
    limit = max_array_size()
    if limit is not None and job.workers > limit:
        raise LaunchError(
            f"--workers {job.workers} is more tasks than this cluster's job arrays hold "
            f"(MaxArraySize = {limit}): ask for at most {limit}, and run `hpsearch slurm` "
            f"again for more (the arrays share the study)"
        )
    task_device(job, gpus_per_worker(job))  # --device cuda where the partition has no GPU


def max_array_size() -> int | None:
    """The cluster's MaxArraySize (its array indices stop one short of it), as `scontrol show
    config` reports it; None where that cannot be asked, and sbatch will judge."""
    if shutil.which("scontrol") is None:
        return None
    shown = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, timeout=60
    )
    for line in shown.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return int(value.strip())
    return None
