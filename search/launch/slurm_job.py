"""The shape and resources of `hpsearch slurm`'s job array, and what its flags alone can refuse:
checked where the job is made, before the cluster, the storage or the data are asked anything (a
dry run away from the cluster checks them too)."""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field

from search.errors import LaunchError

# Seconds before the time limit that SLURM warns a task: enough to finish a step and write a
# 130-170 MB checkpoint to a shared file system
DEFAULT_SIGNAL_SECONDS = 180
# What a task's worker may train on: a task sees the one GPU it asked SLURM for as cuda:0
TASK_DEVICES = ("auto", "cpu", "cuda", "cuda:0")
# The most seconds `--signal=B:USR1@SECONDS` takes: sbatch refuses more, once the study is made
MAX_SIGNAL_SECONDS = 65535
# How much sooner than asked SLURM may send that signal ("up to 60 seconds earlier", sbatch(1))
SIGNAL_EARLY_SECONDS = 60
# SLURM's time formats: minutes[:seconds], hours:minutes:seconds, days-hours[:minutes[:seconds]]
_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
# ... and its words for no limit, in any case
NO_TIME_LIMIT = ("unlimited", "infinite", "-1")
TIME_FORMATS = "minutes (90), MM:SS, HH:MM:SS (4:00:00), D-HH (1-12), D-HH:MM[:SS], UNLIMITED"
# The sbatch options the script sets itself, by long name and short letter, and what to give
# instead: one in --sbatch, a later line, would win unchecked (a --time=3 the stop warning fills
# requeued each task without end; an --array=0-3 ran four tasks for --workers 1)
_WORKERS = "give --workers (and --concurrent)"
_LOGS = "hpsearch writes each task's log under the checkpoint folder"
_OWNED = {
    **dict.fromkeys(("array", "a"), _WORKERS),
    **dict.fromkeys(("ntasks", "n"), "each task runs one worker: " + _WORKERS),
    **dict.fromkeys(("time", "t"), "give --time, which is checked against --signal-seconds"),
    "signal": "give --signal-seconds",
    **dict.fromkeys(("requeue", "no-requeue"), "hpsearch requeues a task itself near its limit"),
    **dict.fromkeys(("output", "o", "error", "e", "open-mode"), _LOGS),
    "export": "the storage reaches the tasks through sbatch's environment (--export=ALL)",
    **dict.fromkeys(("partition", "p"), "give --partition, whose GPUs sinfo is asked about"),
    **dict.fromkeys(("account", "A"), "give --account"),
    "mem": "give --mem",
    **dict.fromkeys(("cpus-per-task", "c"), "give --cpus-per-worker"),
    "gpus-per-task": "give --gpus-per-worker",
}
# sbatch's options whose whole name starts one of _OWNED's: getopt takes an exact name first
_OTHERS_NAMED_AS_A_START = frozenset({"gpus"})


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
        self._check_sbatch_owned()
        self._check_time_format()
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

    def _check_sbatch_owned(self) -> None:
        for argument in self.sbatch:
            owned = sbatch_options(argument)
            if owned:
                dashes = "--" if len(owned[0]) > 1 else "-"
                raise LaunchError(
                    f"--sbatch {argument!r} sets sbatch's {dashes}{owned[0]}, which the job's "
                    f"script sets itself: {_OWNED[owned[0]]}"
                )

    def _check_time_format(self) -> None:
        """sbatch says only "Invalid --time specification", and only once the study is made."""
        if self.time is None or self.time.strip().lower() in NO_TIME_LIMIT:
            return
        if _TIME.fullmatch(self.time.strip()) is None:
            raise LaunchError(
                f"--time {self.time!r} is not a time limit SLURM reads: give {TIME_FORMATS}"
            )

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


def sbatch_options(argument: str) -> list[str]:
    """The options of `_OWNED` an `#SBATCH` argument sets, each of its words read as sbatch reads a
    line's (`--qos=low -t 3` sets two): `time` for --time=3, --tim=3 (getopt takes a long name's
    unambiguous start) or --time 3, `t` for -t 3 or -t3."""
    try:
        words = shlex.split(argument)
    except ValueError:  # an unclosed quote, which sbatch refuses in its own words
        words = argument.split()
    owned = []
    for word in words:
        if word.startswith("--"):
            name = word[2:].split("=", 1)[0]
            if len(name) >= 2 and name not in _OTHERS_NAMED_AS_A_START:
                owned += [
                    option for option in _OWNED if len(option) > 1 and option.startswith(name)
                ]
        elif word.startswith("-") and word[1:2] in _OWNED:
            owned.append(word[1:2])
    return owned


def time_limit_seconds(time: str) -> int | None:
    """A time limit in SLURM's format as seconds; None for no limit (0, UNLIMITED)."""
    found = _TIME.fullmatch(time.strip())
    if found is None:
        return None
    days, *clock = found.groups()
    parts = [int(part) for part in clock if part is not None]
    if days is None and len(parts) < 3:  # minutes[:seconds]
        parts.insert(0, 0)
    hours, minutes, seconds = parts + [0] * (3 - len(parts))
    return int(days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds or None  # 0: no limit


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
