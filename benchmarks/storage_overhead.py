"""What a trial costs a worker besides its training, and how that grows with the study's size and
the number of workers sharing one database.

Each worker process runs the real worker loop (`search.run.worker.run_worker`: dead-trial sweep,
retry claim, budget, ask, heartbeat, tell, checkpoint clean-up) on storage opened by
`search.study.storage.open_storage`, with the study's real sampler and pruner (its [[warm_start]]
point left out: see `sweep_config`). Only the training is replaced: the objective suggests the
trial's parameters, sleeps `--train-seconds` spread over its epochs (a GPU trains while the worker's
CPU idles), reports one made-up val top-1 per epoch (asking the pruner each time, as a real trial
does) and records the same user attributes as a real trial.

Before the workers start, the study is pre-filled with `--prefill` finished trials that look like
real ones (params, 20 intermediate values, the per-epoch history, the worker record, a heartbeat),
so the sweep shows how the cost grows with the study. Each row is a fresh study.

Per row (backend, workers, prefill), per trial, counted once every worker has loaded the study
(that one-time load is reported apart, as `startup_seconds`) and starts its first trial:
- `wall_ms_per_trial`: the worker's wall time besides the simulated training;
- `storage_ms_per_trial`, `storage_calls_per_trial`: inside storage calls on the worker's thread
  (outermost calls only; the heartbeat thread's calls are counted apart);
- PostgreSQL only, read from the server: `db_cpu_ms_per_trial` (CPU time of the server's
  processes, sampled every 0.2 s, so a backend's last slice before it exits can be missed),
  `db_rows_per_trial` (pg_stat_database's tuples returned and fetched) and
  `db_block_bytes_per_trial` (blocks read or hit, 8 KiB each).

    createdb -h 127.0.0.1 -U root hpsearch_bench
    .venv/bin/python -m benchmarks.storage_overhead --workers 1,4,16 --prefill 100,1000,5000 \
        --trials-per-worker 5 --postgres postgresql://root@127.0.0.1:5432/hpsearch_bench --grpc \
        --json storage_overhead.json
    dropdb -h 127.0.0.1 -U root hpsearch_bench

SQLite is measured at the worker counts up to --sqlite-max-workers (4: one machine's workers);
--grpc adds rows through Optuna's gRPC proxy (in front of PostgreSQL when given, else SQLite) at
--grpc-workers (32). The study is studies/imagenette.toml unless --study-file names another.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import inspect
import json
import math
import multiprocessing
import os
import platform
import queue
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import psutil
import sqlalchemy
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

import search.run.worker
import search.study.opening
from search import attrs
from search.launch.local import WorkerSlot, plan_workers
from search.run.objective import _record
from search.run.study_data import fingerprint
from search.run.worker import WorkerOptions
from search.study.opening import open_study
from search.study.resilience import ResilientRDBStorage
from search.study.space import suggest
from search.study.storage import open_storage
from search.studyfile import StudyConfig, load_study_config
from search.url_secrets import masked
from tests.helpers.bulk_trials import add_trials_in_bulk
from trainer.data import ImageData, ImageSplit
from trainer.epoch import EpochMetrics

# The storage API, and the read that Optuna's cache of finished trials makes behind it
STORAGE_METHODS = [
    *(name for name in vars(optuna.storages.BaseStorage) if not name.startswith("_")),
    "_get_trials",
    "set_trial_user_attrs",  # hpsearch's own: a trial's record in one transaction
]
PG_BLOCK_BYTES = 8192
STARTUP_TIMEOUT_SECONDS = 900  # for every worker to import, connect and load the study


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int_list, default=[4], help="e.g. 1,4,16")
    parser.add_argument("--prefill", type=int_list, default=[0], help="e.g. 100,1000,5000")
    parser.add_argument("--trials-per-worker", type=int, default=5)
    parser.add_argument(
        "--train-seconds", type=float, default=1.0, help="simulated training per trial"
    )
    parser.add_argument("--study-file", type=Path, default=Path("studies/imagenette.toml"))
    parser.add_argument(
        "--postgres", help="URL of a database to use (studies are created and deleted in it)"
    )
    parser.add_argument("--grpc", action="store_true", help="add rows through the gRPC proxy")
    parser.add_argument("--grpc-workers", type=int_list, default=[32])
    parser.add_argument("--sqlite-max-workers", type=int, default=4)
    parser.add_argument("--label", default="", help="e.g. before/after, kept in the JSON")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of the code to compare with (this file and tests/helpers/bulk_trials.py "
        "copied in): each row runs on it and on this checkout, in alternating order",
    )
    parser.add_argument("--only", help=argparse.SUPPRESS)  # one backend: how --baseline runs a row
    parser.add_argument("--json", type=Path, help="write the rows here")
    return parser.parse_args()


class InstantObjective:
    """A trial without training: the real suggest, a sleep per epoch in place of training, one
    report and pruner question per epoch, the real trial's user attributes. Its made-up accuracy
    rises with epochs and peaks at lr 1e-2."""

    train_seconds = 1.0  # set per process by worker_process
    # Slept over this process's trials: a trial pruned or paused (asha) sleeps only its epochs'
    # share of train_seconds, and the rest of its wall time is the worker's own
    slept_seconds = 0.0

    def __init__(self, config: StudyConfig, data: ImageData, device: torch.device, stop=None, **_):
        self.config, self.device = config, device

    def steps(self, trial: optuna.Trial, run=None):
        """The trial as the worker drives it, a coroutine of its epochs (search.run.slots): here
        one of none, since its training is sleeps, not epochs for the worker to run."""
        return self(trial, run)
        yield  # a generator, as the worker's slots expect

    def __call__(self, trial: optuna.Trial, run=None) -> float:
        train_config = suggest(trial, self.config)
        trial.set_user_attr(attrs.CONFIG, train_config.to_dict())
        history = []
        try:
            for epoch in range(1, train_config.epochs + 1):
                time.sleep(self.train_seconds / train_config.epochs)
                InstantObjective.slept_seconds += self.train_seconds / train_config.epochs
                history.append(made_up_epoch(train_config.lr, epoch))
                report_instant_epoch(trial, epoch, history[-1].val_top1, last=train_config.epochs)
        finally:
            _record_outcome(trial, history, self.device)
        return max(metrics.val_top1 for metrics in history)


def _record_outcome(trial: optuna.Trial, history: list, device: torch.device) -> None:
    """The objective's own record of a trial; an older checkout's (a --baseline) takes no count
    of restored epochs."""
    if "restored_epochs" in inspect.signature(_record).parameters:
        _record(trial, history, 0, device)  # nothing restored: every epoch trained here
    else:
        _record(trial, history, device)


try:  # the objective's own report and pruner question, where the code measured has one
    from search.run.objective import report_epoch
except ImportError:  # an older checkout, given as --baseline: its objective's three lines

    def report_epoch(trial: optuna.Trial, epoch: int, val_top1: float) -> None:
        trial.report(val_top1, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()


def report_instant_epoch(trial: optuna.Trial, epoch: int, val_top1: float, *, last: int) -> None:
    """The objective's report of an epoch; where it takes the trial's `last` epoch (which it
    never judges), that too: an older checkout's takes none."""
    if "last" in inspect.signature(report_epoch).parameters:
        report_epoch(trial, epoch, val_top1, last=last)
    else:
        report_epoch(trial, epoch, val_top1)


def made_up_epoch(lr: float, epoch: int) -> EpochMetrics:
    quality = max(0.1, 0.9 - 0.15 * abs(math.log10(lr) + 2))
    return EpochMetrics(
        epoch=epoch,
        val_top1=quality * (1 - math.exp(-epoch / 4)),
        val_loss=1.0,
        train_loss=1.0,
        images_per_second=1.0,
        seconds=0.5,
        lr=lr,
    )


class StorageClock:
    """Seconds spent inside storage calls, per thread kind; nested calls count once. Counting
    starts at `start()`, the worker's first trial."""

    def __init__(self) -> None:
        self.counting = False
        self.seconds = {"worker": 0.0, "heartbeat": 0.0}
        self.calls = {"worker": 0, "heartbeat": 0}
        self.by_method: dict[str, list[float]] = {}  # worker thread only: [calls, seconds]
        self._depth = threading.local()
        self._lock = threading.Lock()

    def start(self) -> None:
        self.counting = True

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
                if depth == 0 and self.counting:
                    self._count(method.__name__, time.perf_counter() - started)

        return timed

    def _count(self, name: str, seconds: float) -> None:
        main = threading.current_thread() is threading.main_thread()
        kind = "worker" if main else "heartbeat"
        with self._lock:
            self.seconds[kind] += seconds
            self.calls[kind] += 1
            if main:
                calls, total = self.by_method.get(name, (0, 0.0))
                self.by_method[name] = [calls + 1, total + seconds]


def tiny_data() -> ImageData:
    images = torch.zeros(10, 3, 8, 8, dtype=torch.uint8)
    split = ImageSplit(images, torch.arange(10))
    return ImageData(tuple(f"class_{index}" for index in range(10)), split, split, "benchmark")


def timed_storage_class(url: str) -> type:
    """The class whose methods a worker's storage calls go through."""
    if url.startswith("grpc://"):
        try:  # ours, whose methods call Optuna's client from wrappers of their own
            from search.study.grpc_client import ResilientGrpcStorage
        except ImportError:  # a --baseline checkout from before it (1e9d181 and older)
            return optuna.storages.GrpcStorageProxy
        return ResilientGrpcStorage
    return ResilientRDBStorage


def worker_process(
    config: StudyConfig,
    options: WorkerOptions,
    slot: WorkerSlot,
    train_seconds: float,
    ready,  # a barrier and an event: first trials start once all have loaded the study
    results,
) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(slot.threads)
    clock = StorageClock()
    storage_class = timed_storage_class(options.storage_url)
    for name in STORAGE_METHODS:  # this process only: it was spawned for this benchmark
        if name in vars(storage_class) or hasattr(storage_class, name):
            setattr(storage_class, name, clock.wrap(getattr(storage_class, name)))
    sampler_seconds = _time_the_sampler()
    InstantObjective.train_seconds = train_seconds
    search.run.worker.Objective = InstantObjective
    first_trial = _time_first_trial(clock, ready)
    started = time.perf_counter()
    summary = search.run.worker.run_worker(config, options, data=tiny_data())
    ended = time.perf_counter()
    first = first_trial.get("at", ended)
    loaded = first_trial.get("loaded", ended)
    results.put(
        {
            "worker": slot.index,
            "trials": summary.finished,
            "startup_seconds": loaded - started,
            "wall_seconds": ended - first,
            "slept_seconds": InstantObjective.slept_seconds,
            "sampler_seconds": sampler_seconds[0],
            "storage_seconds": clock.seconds,
            "storage_calls": clock.calls,
            "storage_seconds_by_method": clock.by_method,
        }
    )


SAMPLER_METHODS = ("infer_relative_search_space", "sample_relative", "sample_independent")


def _time_the_sampler() -> list[float]:
    """Seconds the study's sampler spends choosing parameters: what a study of thousands of trials
    may cost by the sampler's own nature, apart from what hpsearch adds."""
    seconds = [0.0]
    build = search.study.opening.build_sampler

    def timed(method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                seconds[0] += time.perf_counter() - started

        return call

    def build_timed(*args: Any, **kwargs: Any) -> optuna.samplers.BaseSampler:
        sampler = build(*args, **kwargs)
        for name in SAMPLER_METHODS:
            setattr(sampler, name, timed(getattr(sampler, name)))
        return sampler

    search.study.opening.build_sampler = build_timed
    return seconds


def _time_first_trial(clock: StorageClock, ready) -> dict[str, float]:
    """Note when the worker has loaded the study and first asks for a trial; wait there for the
    other workers (and the database's meter), then start the clock."""
    first: dict[str, float] = {}
    next_trial = search.run.worker._Worker.next_trial

    def timed_next_trial(self):
        if not first:
            first["loaded"] = time.perf_counter()
            barrier, go = ready
            barrier.wait()
            go.wait()
            first["at"] = time.perf_counter()
            clock.start()
        return next_trial(self)

    search.run.worker._Worker.next_trial = timed_next_trial
    return first


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


# --- a study that looks like a real one --------------------------------------------------------


def prefill(study: optuna.Study, config: StudyConfig, count: int, seed: int = 0) -> None:
    """Add `count` finished trials like a real worker leaves them: about one in three pruned
    after the warm-up, the others complete after every epoch."""
    rng = random.Random(seed)
    epochs = config.train.epochs
    worker = {"host": "prefill", "pid_namespace": 1, "pid": 1, "started": 0.0}
    trials = []
    for number in range(count):
        lr = 10 ** rng.uniform(-4, 0)
        optimizer = rng.choice(["sgd", "adam", "adamw", "radam", "ranger"])
        run = epochs if rng.random() < 0.66 else min(epochs, 6)
        history = [made_up_epoch(lr, epoch) for epoch in range(1, run + 1)]
        params = {"optimizer": optimizer, "lr": lr}
        distributions = {
            "optimizer": CategoricalDistribution(["sgd", "adam", "adamw", "radam", "ranger"]),
            "lr": FloatDistribution(1e-4, 1.0, log=True),
        }
        user_attrs = {
            attrs.CONFIG: {**config.train.to_dict(), **params, "seed": number},
            attrs.WORKER: worker,
            attrs.EPOCHS_RUN: run,
            attrs.DEVICE: "cuda:0 (NVIDIA H200)",
            attrs.COMPILED: False,
            attrs.CODE_VERSION: "prefill",
            attrs.BEST_EPOCH: run,
            attrs.SECONDS: 0.5 * run,
            attrs.IMAGES_PER_SECOND: 1.0,
            attrs.HISTORY: [dataclasses.asdict(metrics) for metrics in history],
        }
        complete = run == epochs
        trials.append(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE if complete else TrialState.PRUNED,
                value=max(m.val_top1 for m in history) if complete else None,
                params=params,
                distributions=distributions,
                user_attrs=user_attrs,
                system_attrs={attrs.HEARTBEAT: time.time()},
                intermediate_values={m.epoch: m.val_top1 for m in history},
            )
        )
    add_trials_in_bulk(study, trials)


# --- what the database server spent ------------------------------------------------------------


class PostgresMeter:
    """The server's CPU seconds (its processes on this machine, sampled every 0.2 s) and
    pg_stat_database's tuples and blocks, between `start()` and `stop()`."""

    STATS = (
        "SELECT tup_returned + tup_fetched, blks_read + blks_hit FROM pg_stat_database "
        "WHERE datname = current_database()"
    )

    def __init__(self, url: str):
        self.engine = sqlalchemy.create_engine(
            url.replace("postgresql://", "postgresql+psycopg://", 1)
        )
        self._cpu: dict[tuple[int, float], tuple[float, float]] = {}  # (pid, created): first, last
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self._stats_before = self._stats()
        self._baseline = _postgres_cpu()  # processes there before: counted from now
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        rows, blocks = (after - before for after, before in zip(self._stats(), self._stats_before))
        self.engine.dispose()
        return {
            "db_cpu_seconds": sum(last - first for first, last in self._cpu.values()),
            "db_rows": rows,
            "db_block_bytes": blocks * PG_BLOCK_BYTES,
        }

    def _stats(self) -> tuple[int, int]:
        with self.engine.connect() as connection:
            # Statistics are collected per transaction; a fresh snapshot is read each time
            connection.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            return tuple(connection.exec_driver_sql(self.STATS).one())

    def _sample(self) -> None:
        while True:
            for key, cpu in _postgres_cpu().items():
                first, _ = self._cpu.get(key, (self._baseline.get(key, 0.0), 0.0))
                self._cpu[key] = (first, cpu)
            if self._stop.wait(0.2):
                return


def _postgres_cpu() -> dict[tuple[int, float], float]:
    """CPU seconds of each PostgreSQL process on this machine, keyed by pid and start time."""
    cpu = {}
    for process in psutil.process_iter(["name", "create_time", "cpu_times"]):
        times = process.info["cpu_times"]
        if process.info["name"] == "postgres" and times is not None:
            cpu[(process.pid, process.info["create_time"])] = times.user + times.system
    return cpu


@contextlib.contextmanager
def database_meter(url: str) -> Iterator[dict[str, float]]:
    figures: dict[str, float] = {}
    if not url.startswith("postgresql"):
        yield figures
        return
    meter = PostgresMeter(url)
    meter.start()
    try:
        yield figures
    finally:
        figures.update(meter.stop())


@contextlib.contextmanager
def grpc_proxy(url: str) -> Iterator[str]:
    """Optuna's gRPC proxy in front of `url`, as `hpsearch grpc-proxy` runs it, in a process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_serve_grpc, args=(url, port), daemon=True)
    process.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.2)
        yield f"grpc://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.join()


def _serve_grpc(url: str, port: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.get_storage(open_storage(url))
    optuna.storages.run_grpc_proxy_server(storage, host="127.0.0.1", port=port)


# --- one row of the sweep ----------------------------------------------------------------------


def sweep_config(base: StudyConfig, workers: int, prefill_count: int, per_worker: int):
    # No [[warm_start]]: each row is one fresh study, and a queued point would be one trial of
    # another kind than the rest.
    return dataclasses.replace(
        base,
        warm_start=(),
        study=dataclasses.replace(
            base.study,
            name=f"storage-overhead-{uuid.uuid4().hex[:8]}",
            trials=prefill_count + workers * per_worker,
            timeout_minutes=None,
        ),
    )


def measure(
    config: StudyConfig,
    url: str,
    worker_url: str,
    workers: int,
    prefill_count: int,
    train_seconds: float,
    checkpoints: Path,
) -> dict:
    storage = open_storage(url)
    study = open_study(config, storage, fingerprint(config, tiny_data()), create=True)
    started = time.perf_counter()
    prefill(study, config, prefill_count)
    prefill_seconds = time.perf_counter() - started
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ready = (context.Barrier(workers + 1, timeout=STARTUP_TIMEOUT_SECONDS), context.Event())
    options = WorkerOptions(worker_url, device="cpu", progress=False, checkpoint_dir=checkpoints)
    slots = plan_workers(workers, None, 1, gpu_count=0, cpu_count=os.cpu_count() or 1)
    processes = [
        context.Process(
            target=worker_process, args=(config, options, slot, train_seconds, ready, results)
        )
        for slot in slots
    ]
    for process in processes:
        process.start()
    ready[0].wait()  # every worker has loaded the study: the database's figures count from here
    load_before = os.getloadavg()[0]
    with database_meter(url) as database:
        ready[1].set()
        per_worker = collect(results, processes)
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    optuna.delete_study(study_name=config.study.name, storage=storage)
    trials = sum(result["trials"] for result in per_worker)
    return {
        "workers": workers,
        "prefill": prefill_count,
        "trials": trials,
        **per_trial_figures(per_worker, trials),
        **{f"{key}_per_trial": value / trials for key, value in database.items()},
        "study_trials": len(states),
        "budget": config.study.trials,
        "states": {state: states.count(state) for state in sorted(set(states))},
        "prefill_seconds": prefill_seconds,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "per_worker": per_worker,
    }


def per_trial_figures(per_worker: list[dict], trials: int) -> dict:
    by_method: dict[str, list[float]] = {}  # calls and ms per trial
    for result in per_worker:
        for name, (calls, seconds) in result["storage_seconds_by_method"].items():
            figures = by_method.setdefault(name, [0.0, 0.0])
            figures[0] += calls / trials
            figures[1] += 1000 * seconds / trials
    working = [r for r in per_worker if r["trials"]]
    return {
        # Less what its trials slept, not train_seconds each: a pruned or paused one slept less
        "wall_ms_per_trial": 1000
        * statistics.median(
            (r["wall_seconds"] - r["slept_seconds"]) / r["trials"] for r in working
        ),
        "sampler_ms_per_trial": 1000 * sum(r["sampler_seconds"] for r in per_worker) / trials,
        "storage_ms_per_trial": 1000
        * sum(r["storage_seconds"]["worker"] for r in per_worker)
        / trials,
        "storage_calls_per_trial": sum(r["storage_calls"]["worker"] for r in per_worker) / trials,
        "heartbeat_storage_ms_per_trial": 1000
        * sum(r["storage_seconds"]["heartbeat"] for r in per_worker)
        / trials,
        "startup_seconds": statistics.median(r["startup_seconds"] for r in per_worker),
        "storage_methods_calls_and_ms_per_trial": dict(
            sorted(by_method.items(), key=lambda item: -item[1][1])
        ),
    }


# --- the sweep ---------------------------------------------------------------------------------


def plan(args: argparse.Namespace, folder: str) -> list[tuple[str, str, int]]:
    """(backend, database URL, workers) per group of rows, each run at every prefill."""
    sqlite = f"sqlite:///{folder}/study.db"
    groups = []
    if args.postgres:
        groups += [("postgresql", args.postgres, workers) for workers in args.workers]
    groups += [
        ("sqlite", sqlite, workers)
        for workers in args.workers
        if workers <= args.sqlite_max_workers
    ]
    if args.grpc:
        behind = args.postgres or sqlite
        groups += [("grpc", behind, workers) for workers in args.grpc_workers]
    return [group for group in groups if args.only in (None, group[0])]


def compare(args: argparse.Namespace) -> list[dict]:
    """Every row twice, on the baseline's code and on ours, each in a process of its own whose
    imports come from that checkout; the order alternates row by row."""
    ours = Path(__file__).resolve().parents[1]
    trees = [("before", args.baseline.resolve()), ("after", ours)]
    rows = []
    specs = [
        (backend, workers, prefill)
        for backend, _, workers in plan(args, "")
        for prefill in args.prefill
    ]
    for index, (backend, workers, prefill_count) in enumerate(specs):
        for label, tree in trees[:: 1 if index % 2 == 0 else -1]:
            rows += run_row(args, tree, label, backend, workers, prefill_count)
    return rows


def run_row(
    args: argparse.Namespace, tree: Path, label: str, backend: str, workers: int, prefill_count: int
) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "row.json"
        command = [
            sys.executable, "-m", "benchmarks.storage_overhead",
            "--workers", str(workers), "--grpc-workers", str(workers),
            "--prefill", str(prefill_count),
            "--trials-per-worker", str(args.trials_per_worker),
            "--train-seconds", str(args.train_seconds),
            "--study-file", str(args.study_file.resolve()),
            "--sqlite-max-workers", str(args.sqlite_max_workers),
            "--only", backend, "--label", label, "--json", str(output),
        ]  # fmt: skip
        if args.postgres:
            command += ["--postgres", args.postgres]
        if args.grpc:
            command.append("--grpc")
        environment = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run(command, cwd=tree, env=environment, check=True)
        return [{"code": label, **row} for row in json.loads(output.read_text())["rows"]]


def main() -> None:
    args = parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if args.baseline:
        rows = compare(args)
        if args.json:
            args.json.write_text(json.dumps(report(args, rows), indent=2) + "\n")
        print_table(rows)
        return
    base = load_study_config(args.study_file)
    rows = []
    with tempfile.TemporaryDirectory(prefix="storage-overhead-") as folder:
        for backend, url, workers in plan(args, folder):
            for prefill_count in args.prefill:
                config = sweep_config(base, workers, prefill_count, args.trials_per_worker)
                with grpc_proxy(url) if backend == "grpc" else contextlib.nullcontext(url) as via:
                    row = {
                        "backend": backend,
                        "url": masked(url),
                        **measure(
                            config,
                            url,
                            via,
                            workers,
                            prefill_count,
                            args.train_seconds,
                            Path(folder) / "checkpoints",
                        ),
                    }
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "per_worker"}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report(args, rows), indent=2) + "\n")
    print_table(rows)


def report(args: argparse.Namespace, rows: list[dict]) -> dict:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "label": args.label,
        "machine": f"{platform.node()}: {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.platform()}",
        "study_file": str(args.study_file),
        "baseline": str(args.baseline) if args.baseline else None,
        "train_seconds": args.train_seconds,
        "trials_per_worker": args.trials_per_worker,
        "rows": rows,
    }


COLUMNS = [  # heading, width, the row's figure as printed
    ("code", 6, lambda row: row.get("code", "")),
    ("backend", 10, lambda row: row["backend"]),
    ("workers", 7, lambda row: row["workers"]),
    ("prefill", 7, lambda row: row["prefill"]),
    ("trials", 6, lambda row: row["trials"]),
    ("wall ms", 8, lambda row: f"{row['wall_ms_per_trial']:.0f}"),
    ("sampler ms", 10, lambda row: f"{row['sampler_ms_per_trial']:.0f}"),
    ("storage ms", 10, lambda row: f"{row['storage_ms_per_trial']:.0f}"),
    ("calls", 6, lambda row: f"{row['storage_calls_per_trial']:.1f}"),
    ("db cpu ms", 9, lambda row: _optional(row, "db_cpu_seconds_per_trial", 1000)),
    ("db rows", 8, lambda row: _optional(row, "db_rows_per_trial", 1)),
    ("startup s", 9, lambda row: f"{row['startup_seconds']:.1f}"),
]


def _optional(row: dict, key: str, scale: float) -> str:
    return "" if row.get(key) is None else f"{scale * row[key]:.0f}"


def print_table(rows: list[dict]) -> None:
    print("\n" + " ".join(f"{heading:>{width}s}" for heading, width, _ in COLUMNS))
    for row in rows:
        print(" ".join(f"{str(figure(row)):>{width}s}" for _, width, figure in COLUMNS))


if __name__ == "__main__":
    main()
