"""Who runs each trial, and whether they still live.

Every trial records its worker (`this_worker`: host, process id and start time, scheduler ids)
and, every heartbeat interval, the time of its last beat; both are trial attributes, which every
storage carries, the gRPC proxy included. A RUNNING trial is dead when its worker was a process
of this machine that no longer exists, which is known at once, or, wherever it ran, when its
last beat is older than the grace period. A dead trial is failed and queued to resume. The
storage lets one caller alone move a trial from RUNNING to FAIL, so two workers that find the
same dead trial queue one retry.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeGuard

import optuna
import psutil
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from search import attrs
from search.study.budget_lock import BudgetLock
from search.study.optuna_compat import end_claimed, trial_id_of
from search.study.orphans import Orphan, close_duplicates, queue_retry_once, recover, retry_due
from search.study.resilience import (
    call_with_retries,
    first_line,
    last_outage_seen,
    without_retries,
)
from search.studyfile.sections import HeartbeatSettings

logger = logging.getLogger("hpsearch.worker")

# Environment variables that name where a scheduler put this process, recorded when present
SCHEDULER_IDS = {
    "slurm_job": "SLURM_JOB_ID",
    "slurm_array_job": "SLURM_ARRAY_JOB_ID",
    "slurm_task": "SLURM_ARRAY_TASK_ID",
    "kubernetes_pod": "POD_NAME",
}
# Beats missed before a worker that is waiting to finish counts a trial as possibly dead
MISSED_BEATS = 2


class _HeldBack:
    """When this process last saw the storage hold heartbeats back: a beat of its own that failed
    or landed late (the database down, the gRPC proxy restarting or waiting out the database
    behind it), or any storage call that met an outage. Every other worker's beats were held back
    as long: their silence counts from then, or a sweep just after an outage longer than the
    grace would fail every live trial, their results thrown away as their tells come through."""

    until = 0.0

    @classmethod
    def note(cls, at: float) -> None:
        cls.until = max(cls.until, at)

    @classmethod
    def since(cls) -> float:
        return max(cls.until, last_outage_seen())


def this_worker() -> dict[str, Any]:
    """This process, as its trials record it. Its start, in seconds since the machine booted,
    tells a reused pid from the process that had it (`started`, the wall-clock time, is for
    people: a clock step moves it); the boot's id and the pid namespace tell this machine's
    processes from another's that shares the host name (a cloned VM, a container)."""
    process = psutil.Process()
    worker = {
        "host": socket.gethostname(),
        "pid_namespace": _pid_namespace(),
        "boot_id": _boot_id(),
        "pid": os.getpid(),
        "started": round(process.create_time(), 2),
        "since_boot": _since_boot(process),
    }
    for key, variable in SCHEDULER_IDS.items():
        if os.environ.get(variable):
            worker[key] = os.environ[variable]
    return worker


def describe(worker: dict[str, Any]) -> str:
    """`pid 4242 on gpu-3 (slurm_job 812_1)`: a worker record, as people read it."""
    scheduler = ", ".join(_scheduler_ids(worker))
    where = f"pid {worker.get('pid', '?')} on {worker.get('host', '?')}"
    return f"{where} ({scheduler})" if scheduler else where


def _scheduler_ids(worker: dict[str, Any]) -> list[str]:
    """A job array's task as `squeue`, `scancel`, `sbatch`'s answer and the task's log name it:
    the array's job id and the task's index (812_1). Each task has a job id of its own too
    (SLURM_JOB_ID), which matches nothing the user was shown."""
    array, task = worker.get("slurm_array_job"), worker.get("slurm_task")
    if array is not None and task is not None:
        ids = [f"slurm_job {array}_{task}"]
    else:
        ids = [f"{key} {worker[key]}" for key in ("slurm_job", "slurm_task") if key in worker]
    if "kubernetes_pod" in worker:
        ids.append(f"kubernetes_pod {worker['kubernetes_pod']}")
    return ids


def _pid_namespace() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux: the host name alone says where a pid means something
        return None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux
        return None


def _since_boot(process: psutil.Process) -> float:
    """Seconds from the machine's boot to the process's start: the kernel counts them in clock
    ticks (hundredths), fixed for the process's life. psutil's create_time adds the boot time,
    which moves with every step of the wall clock (NTP, a VM's migration): taken away again."""
    return round(process.create_time() - psutil.boot_time(), 2)


def is_gone(worker: Any) -> TypeGuard[dict[str, Any]]:
    """True when `worker` was a process that this machine can see, and it no longer exists.
    A worker of another machine (or of this one before it rebooted), or a record this version
    cannot read, is judged by its heartbeat instead."""
    if not isinstance(worker, dict) or not _here(worker):
        return False
    # An hpsearch older than since_boot recorded the wall-clock start alone
    key = "since_boot" if "since_boot" in worker else "started"
    pid, started = worker.get("pid"), worker.get(key)
    if not isinstance(pid, int) or not isinstance(started, (int, float)):
        return False
    try:
        process = psutil.Process(pid)
        now = _since_boot(process) if key == "since_boot" else round(process.create_time(), 2)
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # a process we may not inspect exists
        return False
    return now != started


def _here(worker: dict[str, Any]) -> bool:
    return (
        worker.get("host") == socket.gethostname()
        and worker.get("pid_namespace") == _pid_namespace()
        and worker.get("boot_id", _boot_id()) == _boot_id()  # an older record has none
    )


def last_beat(trial: FrozenTrial) -> float:
    """When the trial last showed life: its last heartbeat, else its start (an older hpsearch)."""
    beat = trial.system_attrs.get(attrs.HEARTBEAT)
    if isinstance(beat, (int, float)):
        return float(beat)
    return trial.datetime_start.timestamp() if trial.datetime_start else time.time()


def sweep(
    study: optuna.Study,
    heartbeat: HeartbeatSettings,
    trials: list[FrozenTrial],
    lock: BudgetLock,
    on_dead: Callable[[FrozenTrial, str, bool], None],
    on_orphan: Callable[[Orphan], None],
) -> bool:
    """What a worker does before it takes a trial: fail the dead trials (`fail_dead_trials`),
    queue the follow-ups of orphans, whose workers died as they ended them, and close a follow-up
    queued twice (search.study.orphans), all found in `trials`, the study as just read; True when a
    trial was queued or closed, which a new read then shows. `on_orphan` hears of each orphan,
    those out of retries included."""
    grace, max_retries = heartbeat.grace_seconds, heartbeat.max_retries
    failed = fail_dead_trials(study, grace, max_retries, trials, on_dead, lock)
    found = recover(study, trials, grace, max_retries, lock, is_gone)
    for orphan in found:
        on_orphan(orphan)
    closed = close_duplicates(study, trials, lock)
    for duplicate in closed:
        logger.warning(
            "trial %d closed without running: trial %d continues trial %d, which both were queued "
            "to continue (two workers queued one at once)",
            duplicate.trial.number,
            duplicate.first,
            duplicate.continued,
        )
    queued = bool(failed) or any(orphan.follow_up is not None for orphan in found)
    return queued or bool(closed)


def fail_dead_trials(
    study: optuna.Study,
    grace_seconds: float,
    max_retries: int,
    trials: list[FrozenTrial] | None = None,
    on_dead: Callable[[FrozenTrial, str, bool], None] | None = None,
    lock: BudgetLock | None = None,
) -> list[int]:
    """Fail every RUNNING trial whose worker is dead and queue it to resume; the numbers failed.
    `trials`: the study's trials as the caller just read them, which saves a read;
    `on_dead(trial, reason, retried)` hears of each one (the worker logs it, and drops the files
    of a lineage out of retries); `lock`, the study's budget lock, under which a retry is queued
    unless a sweep of orphans queued it first (search.study.orphans)."""
    if trials is None:
        trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    failed = []
    now = time.time()
    for trial in (trial for trial in trials if trial.state == TrialState.RUNNING):
        reason = death(trial, now, grace_seconds)
        if reason is not None and _fail(study, trial, reason, max_retries):
            retried = queue_retry_once(study, lock, trial, max_retries, reason) is not None
            failed.append(trial.number)
            if on_dead is not None:
                on_dead(trial, reason, retried)
    return failed


def death(trial: FrozenTrial, now: float, grace_seconds: float) -> str | None:
    """Why a RUNNING trial's worker counts as dead (`its worker (pid 7 on gpu-3) is gone`), or
    None while it may live."""
    worker = trial.user_attrs.get(attrs.WORKER)
    if is_gone(worker):
        return f"its worker ({describe(worker)}) is gone"
    beat = last_beat(trial)
    silent = now - beat
    if now - max(beat, _HeldBack.since()) > grace_seconds:
        return f"its worker sent no heartbeat for {silent:.0f} s (killed, or its machine lost)"
    return None


def _fail(study: optuna.Study, trial: FrozenTrial, reason: str, max_retries: int) -> bool:
    """Move the trial from RUNNING to FAIL, marked due a retry (written before the state: killed
    between the two, this worker leaves it to a sweep); False when another worker did so first."""
    due = retry_due(reason, True, max_retries, this_worker())
    return end_claimed(
        study, trial, TrialState.FAIL, {attrs.FAIL_REASON: reason, attrs.RETRY_DUE: due}
    )


def silent_trials(trials: list[FrozenTrial], interval_seconds: float) -> list[FrozenTrial]:
    """RUNNING trials whose worker has missed beats: dead perhaps, known once the grace passes."""
    quiet_since = time.time() - MISSED_BEATS * interval_seconds
    return [
        trial
        for trial in trials
        if trial.state == TrialState.RUNNING and last_beat(trial) < quiet_since
    ]


class Heartbeat:
    """`with Heartbeat(storage, trial, interval):` records the time every `interval` seconds
    as a trial system attribute, through whatever storage the worker uses. A beat that cannot
    land within the interval (the database is restarting) is tried again at the next tick.

    The storage takes the trial's storage id; the log names the trial by its number, as every
    other line and command does (the two differ: ids count across a storage's studies)."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial: optuna.Trial, interval: float):
        self.storage, self.interval = storage, interval
        self.trial_id, self.number = trial_id_of(trial), trial.number
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, daemon=True, name=f"heartbeat-trial-{trial.number}"
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        missed = False
        while True:
            started = time.monotonic()
            try:
                call_with_retries(
                    without_retries(self.storage, "set_trial_system_attr"),
                    self.trial_id,
                    attrs.HEARTBEAT,
                    time.time(),
                    max_outage=self.interval,
                )
                # Landed after a miss, or late (it waited on a stalled storage): beats land again
                if missed or time.monotonic() - started > self.interval:
                    _HeldBack.note(time.time())
                missed = False
            except UpdateFinishedTrialError:  # told meanwhile: nothing left to beat for
                return
            # The thread must outlive any outage; the next tick tries again.
            except Exception as error:  # noqa: BLE001
                _HeldBack.note(time.time())
                missed = True
                logger.warning("heartbeat of trial %d missed: %s", self.number, first_line(error))
            if self._stop.wait(self.interval):
                return
