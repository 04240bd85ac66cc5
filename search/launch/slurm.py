"""`hpsearch slurm`: a study's workers as one SLURM job array, one `hpsearch worker` per task.

Everything that can be checked is checked on the submitting machine before anything is
submitted: a storage that many machines can share, a checkpoint folder given on purpose (a
shared mount), that sbatch takes the job array (`--test-only`: a partition, time limit or
resources it refuses), the data, the database answering; and, once the study is opened, that it
has trials left to run, so that no job array ends at once having done nothing. The job's own
flags are checked where it is made (slurm_job.py). The study is created or resumed here, so the
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

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import optuna

from search import locations
from search.errors import LaunchError
from search.launch.slurm_cluster import (
    ASK_SECONDS,
    check_sbatch_takes,
    gpus_per_worker,
    max_array_size,
    sbatch_said,
)
from search.launch.slurm_job import SlurmJob, task_device
from search.run.joining import join
from search.run.options import WorkerOptions
from search.run.paths import slug
from search.run.request import Request
from search.study.storage import check_storage_url
from search.study.work_left import nothing_left
from search.studyfile import StudyConfig
from search.url_secrets import masked
from trainer.source_names import IMAGENETTE

LOG_FOLDER = "slurm-logs"  # under the checkpoint folder, beside the studies' trial folders
# What no `#SBATCH --output` can name: a directive ends at the line's end, and a backslash in the
# path makes SLURM drop every backslash and leave %A and %a unexpanded
UNNAMEABLE_IN_OUTPUT = {"\n": "a line break", "\\": "a backslash"}


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
        "# A line of the log, as the worker writes its own, saying what the worker cannot know",
        _say(config.study.name, _json_log(job)),
        *_python_check(job.python),
        "# torch's threads: the task's CPUs, not the node's",
        "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}",
        shlex.join(_worker_command(config, job, checkpoints, task_device(job, gpus))) + " &",
        "worker=$!",
        "# On either signal the worker writes its last finished epoch, queues its trial to resume",
        "# and exits. USR1, the time limit is near: this task asks to be requeued. TERM, SLURM",
        "# requeues, preempts or cancels it: SLURM decides what follows. The task exits as its",
        "# worker did: one that failed while stopping ends FAILED, and is not run again.",
        "stop() {",
        '    [ "$1" = requeue ] && say "SIGUSR1: the time limit is near; stopping the worker"',
        '    kill -TERM "$worker" 2>/dev/null',
        '    wait "$worker"',
        "    local stopped=$?",
        "    trap '' USR1 TERM  # the worker is gone: the requeue's own TERM runs no stop",
        '    if [ "$stopped" = 0 ] && [ "$1" = requeue ]; then',
        '        say "requeueing this task; its trial resumes on whichever task takes it next"',
        '        scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
        '    elif [ "$1" = requeue ]; then',
        '        say "not requeued: the worker failed while stopping (exit status $stopped)"',
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


def _python_check(python: str) -> list[str]:
    """Lines that end the task, saying why, where --python cannot run hpsearch on its node: a
    missing one failed every task with a shell's "not found", and a program that ignores its
    arguments (/bin/true) completed every task having done nothing."""
    runs = "print('hpsearch')"
    return [
        "# --python must run hpsearch on this node",
        f"hpsearch_python={shlex.quote(python)}",
        f'ran=$("$hpsearch_python" -c "import search.cli; {runs}" 2>/dev/null)',
        'if [ "$ran" != hpsearch ]; then',
        '    say "--python $hpsearch_python cannot run hpsearch on $(hostname): install it there, '
        'or give a --python (and --setup) that can"',
        "    exit 2",
        "fi",
    ]


# `say` in a JSON log: an object as the worker's own lines are, the message escaped for JSON's
# string (its backslashes, then its quotes); the study's name, already JSON, passed to printf as an
# argument, where nothing of it is read as a format
JSON_SAY = r"""say() {
    local message=${1//\\/\\\\}
    message=${message//\"/\\\"}
    printf '{"time": "%s", "event": "note", "study": %s, "message": "%s"}\n' \
        "$(date -u '+%Y-%m-%dT%H:%M:%S+00:00')" STUDY "$message" >&2
}"""


def _say(study: str, json_log: bool) -> str:
    """The script's `say MESSAGE`: a line as the worker writes its own, of its --log-format (a plain
    line in a JSON log breaks a log collector)."""
    if json_log:
        return JSON_SAY.replace("STUDY", shlex.quote(json.dumps(study)))
    return "say() { echo \"$(date '+%Y-%m-%d %H:%M:%S') $1\" >&2; }"


def _json_log(job: SlurmJob) -> bool:
    passed = job.extra_worker_args
    return ("--log-format", "json") in zip(passed, passed[1:])


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
    name = joined.config.study.name
    check_work_left(joined.study, joined.config)
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
        timeout=2 * ASK_SECONDS,
    )
    if done.returncode != 0:  # after `--test-only` took it: a limit met since, a controller down
        raise LaunchError(
            f"sbatch refused the job array: {sbatch_said(done.stderr)}; study {name!r} is ready in "
            "the storage, but no task was submitted: run this command again once sbatch takes it"
        )
    job_id = done.stdout.strip().split(";")[0]
    return Submitted(job_id, str(checkpoints / LOG_FOLDER / _log_name(name, f"{job_id}_*")), name)


def check_work_left(study: optuna.Study, config: StudyConfig) -> None:
    """Refuse a job array whose every task would find nothing to run and end at once, COMPLETED."""
    left = nothing_left(study, config)
    if left is not None:
        raise LaunchError(
            f"study {config.study.name!r} has nothing left to run: {left.why}, so every task "
            f"would end at once; {left.remedy}"
        )


def _check_submittable(config: StudyConfig, options: WorkerOptions, job: SlurmJob) -> None:
    """The command's own input first, wherever it runs (as `--dry-run` checks it), then the
    place: so the one refusal away from the cluster is "go to a login node", and the command
    that gets it is one that will work there; then what this cluster holds. All before the data
    is decoded (minutes on a first run) and before a storage or study is made."""
    checkpoints = check_shared(config, options)
    if shutil.which("sbatch") is None:
        raise LaunchError("sbatch is not on PATH: run `hpsearch slurm` on a SLURM login node")
    limit = max_array_size()
    if limit is not None and job.workers > limit:
        raise LaunchError(
            f"--workers {job.workers} is more tasks than this cluster's job arrays hold "
            f"(MaxArraySize = {limit}): ask for at most {limit}, and run `hpsearch slurm` "
            f"again for more (the arrays share the study)"
        )
    gpus = gpus_per_worker(job)
    task_device(job, gpus)  # --device cuda where the partition has no GPU
    check_sbatch_takes(sbatch_script(config, job, checkpoints, gpus), job, gpus)
