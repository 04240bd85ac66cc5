"""Time per trial spent in the storage, with N worker processes on PostgreSQL and on SQLite.

Each worker process runs the real worker loop (`search.run.worker.run_worker`: budget check, ask,
heartbeat, tell, checkpoint clean-up) on storage opened by `search.study.storage.open_storage` (WAL
and busy timeout for SQLite, the connection pool for PostgreSQL), with the study's real sampler and
pruner (its [[warm_start]] point left out: see main). Only the training is replaced: the
objective suggests the trial's parameters, reports one made-up val top-1 per epoch (asking the
pruner each time, as a real trial does) and records the same user attributes as a real trial.
Every call into the storage is timed in the worker.

Reported per backend: trials, wall seconds per trial (all a trial costs a worker besides its
training: storage, sampler, pruner), and milliseconds per trial inside storage calls on the
worker's own thread (the heartbeat thread's calls are counted apart).

    createdb -h 127.0.0.1 -U root hpsearch_bench
    .venv/bin/python -m benchmarks.storage_overhead --workers 4 \
        --postgres postgresql://root@127.0.0.1:5432/hpsearch_bench --json storage_overhead.json
    dropdb -h 127.0.0.1 -U root hpsearch_bench

Without --postgres only SQLite is measured. The study is studies/imagenette.toml unless
--study-file names another; --trials-per-worker sets the budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import math
import multiprocessing
import os
import queue
import statistics
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import torch

import search.run.worker
from search.launch import WorkerSlot, plan_workers
from search.run.objective import _record
from search.run.study_data import fingerprint
from search.run.worker import WorkerOptions
from search.study.create import open_study
from search.study.resilience import ResilientRDBStorage
from search.study.space import suggest
from search.study.storage import masked, open_storage
from search.studyfile import StudyConfig, load_study_config
from trainer.data import ImageData, ImageSplit
from trainer.loop import EpochMetrics

STORAGE_METHODS = [name for name in vars(optuna.storages.BaseStorage) if not name.startswith("_")]
TIMED_METHODS = [*STORAGE_METHODS, "record_heartbeat", "_get_stale_trial_ids"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials-per-worker", type=int, default=25)
    parser.add_argument("--study-file", type=Path, default=Path("studies/imagenette.toml"))
    parser.add_argument(
        "--rounds", type=int, default=1, help="each backend this many times, order alternating"
    )
    parser.add_argument(
        "--postgres", help="URL of a database to use (a study is created and deleted in it)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser.parse_args()


class InstantObjective:
    """A trial without training: the real suggest, one report and pruner question per epoch,
    the real trial's user attributes. Its made-up accuracy rises with epochs and peaks at
    lr 1e-2."""

    def __init__(self, config: StudyConfig, data: ImageData, device: torch.device, stop=None, **_):
        self.config, self.device = config, device

    def __call__(self, trial: optuna.Trial, run=None) -> float:
        train_config = suggest(trial, self.config)
        trial.set_user_attr("config", train_config.to_dict())
        quality = max(0.1, 0.9 - 0.15 * abs(math.log10(train_config.lr) + 2))
        history = []
        for epoch in range(1, train_config.epochs + 1):
            val_top1 = quality * (1 - math.exp(-epoch / 4))
            history.append(
                EpochMetrics(
                    epoch=epoch,
                    val_top1=val_top1,
                    val_loss=1.0,
                    train_loss=1.0,
                    images_per_second=1.0,
                    seconds=0.0,
                    lr=train_config.lr,
                )
            )
            trial.report(val_top1, epoch)
            if trial.should_prune():
                _record(trial, history, self.device)
                raise optuna.TrialPruned()
        _record(trial, history, self.device)
        return max(metrics.val_top1 for metrics in history)


class StorageClock:
    """Seconds spent inside storage calls, per thread kind; nested calls count once."""

    def __init__(self) -> None:
        self.seconds = {"worker": 0.0, "heartbeat": 0.0}
        self.calls = {"worker": 0, "heartbeat": 0}
        self.by_method: dict[str, float] = {}  # worker thread only
        self._depth = threading.local()
        self._lock = threading.Lock()

    def wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._depth, "value", 0)
            self._depth.value = depth + 1
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._depth.value = depth
                if depth == 0:
                    kind = (
                        "worker"
                        if threading.current_thread() is threading.main_thread()
                        else "heartbeat"
                    )
                    with self._lock:
                        self.seconds[kind] += time.perf_counter() - started
                        self.calls[kind] += 1
                        if kind == "worker":
                            self.by_method[method.__name__] = (
                                self.by_method.get(method.__name__, 0.0)
                                + time.perf_counter()
                                - started
                            )

        return timed


def tiny_data() -> ImageData:
    images = torch.zeros(10, 3, 8, 8, dtype=torch.uint8)
    split = ImageSplit(images, torch.arange(10))
    return ImageData(tuple(f"class_{index}" for index in range(10)), split, split, "benchmark")


def worker_process(config: StudyConfig, options: WorkerOptions, slot: WorkerSlot, results) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(slot.threads)
    clock = StorageClock()
    for name in TIMED_METHODS:  # this process only: it was spawned for this benchmark
        setattr(ResilientRDBStorage, name, clock.wrap(getattr(ResilientRDBStorage, name)))
    search.run.worker.Objective = InstantObjective
    started = time.perf_counter()
    summary = search.run.worker.run_worker(
        config, options, worker_index=slot.index, data=tiny_data()
    )
    results.put(
        {
            "worker": slot.index,
            "trials": summary.finished,
            "wall_seconds": time.perf_counter() - started,
            "storage_seconds": clock.seconds,
            "storage_calls": clock.calls,
            "storage_seconds_by_method": clock.by_method,
        }
    )


def collect(results, processes: list) -> list[dict]:
    """Each worker's figures; a worker that died says so instead of leaving us waiting."""
    collected = []
    while len(collected) < len(processes):
        try:
            collected.append(results.get(timeout=1))
        except queue.Empty:
            if all(process.exitcode is not None for process in processes):
                codes = [process.exitcode for process in processes]
                raise RuntimeError(
                    f"worker(s) exited without results (exit codes {codes}); see the messages above"
                ) from None
    for process in processes:
        process.join()
    return collected


def measure(config: StudyConfig, url: str, workers: int, checkpoints: Path) -> dict:
    storage = open_storage(url)
    open_study(config, storage, fingerprint(config, tiny_data()), create=True)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    options = WorkerOptions(url, device="cpu", progress=False, checkpoint_dir=checkpoints)
    slots = plan_workers(workers, None, 1, gpu_count=0, cpu_count=os.cpu_count() or 1)
    load_before = os.getloadavg()[0]
    processes = [
        context.Process(target=worker_process, args=(config, options, slot, results))
        for slot in slots
    ]
    for process in processes:
        process.start()
    per_worker = collect(results, processes)
    study = optuna.load_study(study_name=config.study.name, storage=storage)
    states = [trial.state.name.lower() for trial in study.get_trials(deepcopy=False)]
    optuna.delete_study(study_name=config.study.name, storage=storage)
    trials = sum(result["trials"] for result in per_worker)
    by_method = {
        name: 1000 * sum(r["storage_seconds_by_method"].get(name, 0.0) for r in per_worker) / trials
        for name in {name for r in per_worker for name in r["storage_seconds_by_method"]}
    }
    return {
        "url": masked(url),
        "workers": workers,
        "trials": trials,
        "study_trials": len(states),
        "budget": config.study.trials,
        "states": {state: states.count(state) for state in sorted(set(states))},
        "wall_seconds_per_trial": statistics.median(
            r["wall_seconds"] / r["trials"] for r in per_worker
        ),
        "storage_ms_per_trial": 1000
        * sum(r["storage_seconds"]["worker"] for r in per_worker)
        / trials,
        "heartbeat_storage_ms_per_trial": 1000
        * sum(r["storage_seconds"]["heartbeat"] for r in per_worker)
        / trials,
        "storage_calls_per_trial": sum(r["storage_calls"]["worker"] for r in per_worker) / trials,
        "slowest_storage_methods_ms_per_trial": dict(
            sorted(by_method.items(), key=lambda item: -item[1])[:4]
        ),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "per_worker": per_worker,
    }


def main() -> None:
    args = parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    base = load_study_config(args.study_file)
    results = []
    with tempfile.TemporaryDirectory(prefix="storage-overhead-") as folder:
        backends = {"sqlite": f"sqlite:///{folder}/study.db"}
        if args.postgres:
            backends = {"postgresql": args.postgres, **backends}
        rounds = [
            list(backends.items())[:: 1 if index % 2 == 0 else -1] for index in range(args.rounds)
        ]
        for backend, url in [pair for order in rounds for pair in order]:
            name = f"storage-overhead-{uuid.uuid4().hex[:8]}"
            # No [[warm_start]]: on SQLite two workers' ask() can both take one queued trial
            # (pysqlite starts no transaction for a SELECT), and the loser's worker stops with an
            # error.
            config = dataclasses.replace(
                base,
                warm_start=(),
                study=dataclasses.replace(
                    base.study,
                    name=name,
                    trials=args.workers * args.trials_per_worker,
                    timeout_minutes=None,
                ),
            )
            result = {
                "backend": backend,
                **measure(config, url, args.workers, Path(folder) / "checkpoints"),
            }
            results.append(result)
            print(
                json.dumps({key: value for key, value in result.items() if key != "per_worker"}),
                flush=True,
            )
    if args.json:
        date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        args.json.write_text(
            json.dumps(
                {"date": date, "study_file": str(args.study_file), "results": results}, indent=2
            )
            + "\n"
        )
    print(
        f"\n{'backend':10s} {'workers':>7s} {'trials':>9s} {'wall ms/trial':>13s} "
        f"{'storage ms/trial':>16s} {'calls/trial':>11s} {'heartbeat ms':>12s}  load"
    )
    for result in results:
        print(
            f"{result['backend']:10s} {result['workers']:7d} "
            f"{result['trials']:4d}/{result['budget']:<4d} "
            f"{1000 * result['wall_seconds_per_trial']:13.0f} "
            f"{result['storage_ms_per_trial']:16.0f} "
            f"{result['storage_calls_per_trial']:11.0f} "
            f"{result['heartbeat_storage_ms_per_trial']:12.0f}  "
            f"{result['load_before']:.1f}->{result['load_after']:.1f}"
        )
    print(
        "trials over the budget: "
        + ", ".join(f"{r['backend']} {r['study_trials'] - r['budget']:+d}" for r in results)
    )
    print(
        "per trial in the storage: "
        + ", ".join(
            f"{r['backend']} {r['storage_ms_per_trial']:.0f} ms (wall "
            f"{1000 * r['wall_seconds_per_trial']:.0f} ms)"
            for r in results
        )
        + f", with {args.workers} workers"
    )


if __name__ == "__main__":
    main()
