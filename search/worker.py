"""Workers: long-lived processes that load the data once and run trial after trial until the
study's budget is met. `launch` starts the local ones; `run_worker` is one of them."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch

from search.config import StudyConfig
from search.objective import TRIAL_FAILURES, Objective, free_device_memory
from search.progress import StudyProgress, finished_trials
from search.space import NoPointLeft
from search.storage import masked, open_storage
from search.study import open_study
from trainer import ImageData, load_image_data, resolve_device


@dataclass(frozen=True)
class WorkerOptions:
    storage_url: str
    device: str = "auto"
    cache_dir: Path | None = None
    progress: bool = True


def load_study_data(config: StudyConfig, cache_dir: Path | None = None, *, progress: bool = True) -> ImageData:
    """The images a study trains on: decoded once, capped per class, with the search's val split."""
    settings = config.data
    data = load_image_data(settings.source, settings.image_size, cache_dir=cache_dir, progress=progress)
    if settings.per_class is not None:
        data = data.cap_per_class(settings.per_class)
    if settings.validation_fraction is not None:
        data = data.holdout(settings.validation_fraction, seed=config.study.seed)
    return data


def fingerprint(config: StudyConfig, data: ImageData) -> dict:
    return {**data.fingerprint(), "image_size": config.data.image_size, "per_class": config.data.per_class,
            "validation_fraction": config.data.validation_fraction}


def connect(config: StudyConfig, options: WorkerOptions) -> optuna.storages.RDBStorage:
    """Open the study's storage with its heartbeat: a trial whose worker died is failed and retried."""
    heartbeat = config.heartbeat
    return open_storage(options.storage_url, heartbeat_interval=heartbeat.interval_seconds,
                        grace_period=heartbeat.grace_seconds,
                        stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                            max_retry=heartbeat.max_retries))


def run_worker(config: StudyConfig, options: WorkerOptions, *, worker_index: int = 0,
               data: ImageData | None = None, create: bool = False) -> int:
    """Run trials until the budget is met or the timeout passes; returns how many this worker ran."""
    storage = connect(config, options)  # before the data: a wrong URL fails in a second, not after decoding
    data = data if data is not None else load_study_data(config, options.cache_dir, progress=options.progress)
    study = open_study(config, storage, fingerprint(config, data), worker_index=worker_index, create=create)
    device = resolve_device(options.device)
    objective = Objective(config, data, device)
    deadline = time.monotonic() + 60 * config.study.timeout_minutes if config.study.timeout_minutes else None
    ran = 0
    with StudyProgress(study, config.study.trials, enabled=options.progress):
        while _should_start_trial(study, config, deadline):
            try:
                study.optimize(objective, n_trials=1, catch=TRIAL_FAILURES, gc_after_trial=True,
                               callbacks=[_print_failure])
            except NoPointLeft:
                break
            finally:
                free_device_memory(device)
            ran += 1
    return ran


def _should_start_trial(study: optuna.Study, config: StudyConfig, deadline: float | None) -> bool:
    optuna.storages.fail_stale_trials(study)  # a dead worker's trial must not hold a budget slot
    trials = study.get_trials(deepcopy=False)
    if finished_trials(trials) >= config.study.trials:
        return False
    if deadline is not None and time.monotonic() >= deadline:
        return False
    if config.space is None:  # a study of fixed points ends when its queue is empty
        return any(trial.state == optuna.trial.TrialState.WAITING for trial in trials)
    return True


def _print_failure(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    if trial.state == optuna.trial.TrialState.FAIL:
        reason = trial.user_attrs.get("fail_reason") or trial.system_attrs.get("fail_reason", "unknown")
        print(f"trial {trial.number} failed: {reason}", file=sys.stderr, flush=True)


def launch(config: StudyConfig, options: WorkerOptions, *, workers: int = 1) -> optuna.Study:
    """Create or resume the study, then run `workers` local workers until its budget is met."""
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, but got workers={workers}")
    storage = connect(config, options)
    data = load_study_data(config, options.cache_dir, progress=options.progress)
    study = open_study(config, storage, fingerprint(config, data), create=True)
    if options.progress:
        print(f"study {config.study.name!r} in {masked(options.storage_url)}: budget {config.study.trials} trials, "
              f"{len(data.train)} train / {len(data.val)} val images, {workers} worker(s)", file=sys.stderr)
    if workers == 1:
        run_worker(config, options, data=data)
        return study
    _run_processes(config, options, workers, study)
    return study


def _run_processes(config: StudyConfig, options: WorkerOptions, workers: int, study: optuna.Study) -> None:
    context = multiprocessing.get_context("spawn")  # fork would copy CUDA and database state
    quiet = WorkerOptions(options.storage_url, options.device, options.cache_dir, progress=False)
    processes = [context.Process(target=_worker_process, args=(config, quiet, index, workers),
                                 name=f"hpsearch-worker-{index}") for index in range(workers)]
    with StudyProgress(study, config.study.trials, enabled=options.progress):
        for process in processes:
            process.start()
        for process in processes:
            process.join()
    failed = [process.name for process in processes if process.exitcode != 0]
    if failed:
        raise RuntimeError(f"worker process(es) {', '.join(failed)} exited with an error; see the messages above")


def _worker_process(config: StudyConfig, options: WorkerOptions, index: int, workers: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Local workers share the CPU cores; more threads than cores only adds contention.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    if torch.cuda.is_available() and options.device in ("auto", "cuda"):
        torch.cuda.set_device(index % torch.cuda.device_count())
    run_worker(config, options, worker_index=index)
