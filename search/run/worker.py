"""Workers: long-lived processes that load the data once and run trial after trial until the
study's budget is met. `run_worker` is one; `search.launch` starts several.

The loop is Optuna's ask and tell, with a heartbeat that survives database restarts and one
retry policy (search.study.retries) for a killed worker, a signal and a lost database.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search import attrs, locations
from search.run import trial_files
from search.run.objective import TRIAL_FAILURES, Objective, TrialRun, free_device_memory
from search.run.progress import StudyProgress
from search.run.study_data import fingerprint, load_study_data
from search.study import retries
from search.study.create import open_study
from search.study.resilience import Heartbeat, ResilientRDBStorage
from search.study.space import NoPointLeft
from search.study.storage import open_storage
from search.studyfile import StudyConfig
from trainer import ImageData, TrainingStopped, resolve_device


@dataclass(frozen=True)
class WorkerOptions:
    storage_url: str
    device: str = "auto"
    cache_dir: Path | None = None
    progress: bool = True
    checkpoint_dir: Path | None = None  # overrides the study file's [checkpoint] dir
    compile: bool = False  # torch.compile the network once, on this worker's first trial


def default_worker_index() -> int:
    """From host and pid: distinct across machines and processes without coordination."""
    return 1 + zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 1_000_000


def connect(config: StudyConfig, options: WorkerOptions) -> ResilientRDBStorage:
    """Open the study's storage with its heartbeat: a trial whose worker went silent is retried."""
    heartbeat = config.heartbeat
    return open_storage(
        options.storage_url,
        heartbeat_interval=heartbeat.interval_seconds,
        grace_period=heartbeat.grace_seconds,
        stale_trial_callback=retries.stale_trial_callback(heartbeat.max_retries),
    )


def run_worker(
    config: StudyConfig,
    options: WorkerOptions,
    *,
    worker_index: int = 0,
    data: ImageData | None = None,
    create: bool = False,
    stop: threading.Event | None = None,
) -> int:
    """Run trials until the budget is met, the timeout passes or `stop` is set; return how many."""
    # Before the data: a wrong URL fails in a second, not after decoding
    storage = connect(config, options)
    data = (
        data
        if data is not None
        else load_study_data(config, options.cache_dir, progress=options.progress)
    )
    study = open_study(
        config, storage, fingerprint(config, data), worker_index=worker_index, create=create
    )
    stop = stop or threading.Event()
    objective = Objective(
        config, data, resolve_device(options.device), stop, compile=options.compile
    )
    worker = _Worker(
        config,
        study,
        storage,
        objective,
        locations.checkpoint_root(options.checkpoint_dir, config.checkpoint.dir),
        stop,
    )
    deadline = (
        time.monotonic() + 60 * config.study.timeout_minutes
        if config.study.timeout_minutes
        else None
    )
    ran = 0
    with StudyProgress(study, config.study.trials, enabled=options.progress):
        while not stop.is_set() and _should_start_trial(study, config, deadline):
            if not worker.run_one_trial():
                break
            ran += 1
    return ran


def _should_start_trial(study: optuna.Study, config: StudyConfig, deadline: float | None) -> bool:
    optuna.storages.fail_stale_trials(study)  # a dead worker's trial is failed and queued again
    trials = study.get_trials(deepcopy=False)
    if attrs.budget_spent(trials) >= config.study.trials:
        return False
    if deadline is not None and time.monotonic() >= deadline:
        return False
    if config.space is None:  # a study of fixed points ends when its queue is empty
        return any(trial.state == TrialState.WAITING for trial in trials)
    return True


@dataclass
class _Worker:
    config: StudyConfig
    study: optuna.Study
    storage: ResilientRDBStorage
    objective: Objective
    checkpoint_root: Path
    stop: threading.Event

    def run_one_trial(self) -> bool:
        """Ask, train with a heartbeat, tell; False when there is nothing left to run."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna warns that heartbeats are meant for optimize()
            trial = self.study.ask()
        run = TrialRun(
            trial_files.trial_folder(
                self.checkpoint_root, self.study.study_name, retries.first_attempt(trial)
            ),
            resume=attrs.RETRY_OF in trial.user_attrs,
        )
        with Heartbeat(self.storage, trial._trial_id, self.config.heartbeat.interval_seconds):
            more = self._run_and_tell(trial, run)
        free_device_memory(self.objective.device)
        return more

    def _run_and_tell(self, trial: optuna.Trial, run: TrialRun) -> bool:
        try:
            value = self.objective(trial, run)
        except optuna.TrialPruned:
            self._finish(trial, run, TrialState.PRUNED)
        except TRIAL_FAILURES as error:
            _say(f"trial {trial.number} failed: {type(error).__name__}: {error}")
            self._finish(trial, run, TrialState.FAIL)
        except TrainingStopped as error:
            self._stopped(trial, f"its worker was stopped ({error})")
        except NoPointLeft as error:
            trial.set_user_attr(attrs.FAIL_REASON, str(error))
            self.study.tell(trial, state=TrialState.FAIL)
            return False
        # A bug: record it on the trial, then stop this worker loudly
        except BaseException as error:
            trial.set_user_attr(attrs.FAIL_REASON, f"{type(error).__name__}: {error}")
            self._stopped(trial, f"{type(error).__name__} in its worker")
            raise
        else:
            self._finish(trial, run, TrialState.COMPLETE, value)
        return True

    def _finish(
        self, trial: optuna.Trial, run: TrialRun, state: TrialState, value: float | None = None
    ) -> None:
        frozen = self.study.tell(
            trial, value if state == TrialState.COMPLETE else None, state=state
        )
        trial_files.release(self.study, frozen, run.folder)

    def _stopped(self, trial: optuna.Trial, reason: str) -> None:
        """The trial did not finish through any fault of its own: FAIL now, run again later."""
        frozen = self.study.tell(trial, state=TrialState.FAIL)
        if retries.queue_retry(self.study, frozen, self.config.heartbeat.max_retries, reason):
            _say(f"trial {trial.number} stopped; queued to resume from its last checkpoint")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT or SIGTERM sets the event, so the worker stops at a clean point and exits 0; a second
    SIGINT exits at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request_stop(signum: int, frame) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        _say(
            f"{signal.Signals(signum).name}: stopping at a clean point; the trial will be retried "
            "(Ctrl-C again to exit now)"
        )

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
