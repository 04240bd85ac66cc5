"""`hpsearch run`: create or resume a study, then run local workers on it until its budget is met.

On a machine with GPUs, one worker process per GPU by default, each seeing only its own
(CUDA_VISIBLE_DEVICES); on a CPU-only machine, N processes share the cores.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from types import FrameType

import optuna
import torch
from tqdm import tqdm

from search.errors import (
    USER_ERROR_EXIT,
    HpsearchError,
    LaunchError,
    SearchStopped,
    WorkerFailed,
)
from search.launch.forking import check_local_workers, start_worker_server
from search.launch.inherited import Inherited
from search.launch.watched import Watched, first_to_end
from search.run import trial_files
from search.run.joining import Joined, join
from search.run.log import WorkerLog, last_line, log_warnings, one_line_warnings
from search.run.options import WORKER_WAIT_FOR_STORAGE_SECONDS
from search.run.progress import StudyProgress
from search.run.request import Request
from search.run.stopping import interrupted_at_once, stop_on_signals
from search.run.worker import WorkerOptions, run_worker, work
from search.study.recorded import budget
from search.study.work_left import has_unfinished, nothing_left
from search.studyfile import StudyConfig
from search.url_secrets import masked
from trainer.cpus import usable_cpus
from trainer.naming import flag_naming, flags_named, named

# A slot's worker killed by a signal is started again this many times in a run: one killed more
# often has a cause to fix (the machine's memory), and what it left runs once the others end
MAX_RESTARTS = 3
# A worker's exit on a second Ctrl-C, as a shell reports a command SIGINT ended (128 + 2)
INTERRUPTED_EXIT = 130


@dataclass(frozen=True)
class WorkerSlot:
    index: int
    gpu: int | None  # the physical GPU this worker alone sees, or None on the CPU
    threads: int  # CPU threads for torch in this worker


def plan_workers(
    workers: int | None,
    gpus: list[int] | None,
    workers_per_gpu: int,
    *,
    gpu_count: int,
    cpu_count: int,
) -> list[WorkerSlot]:
    """Spread the workers over the chosen GPUs (all by default), or over the CPU cores."""
    check_local_workers(workers, gpus, workers_per_gpu)
    if gpus is not None:
        missing = [gpu for gpu in gpus if not 0 <= gpu < gpu_count]
        if missing:
            raise LaunchError(
                f"{named('gpus')} names GPU(s) {missing} but this machine has {gpu_count} "
                "(numbered from 0)"
                + ("" if gpu_count else f"; leave {named('gpus')} out to use the CPU")
            )
    chosen = gpus if gpus is not None else list(range(gpu_count))
    if not chosen:
        count = workers or 1
        return [WorkerSlot(index, None, max(1, cpu_count // count)) for index in range(count)]
    count = workers if workers is not None else len(chosen) * workers_per_gpu
    threads = max(1, cpu_count // count)
    return [WorkerSlot(index, chosen[index % len(chosen)], threads) for index in range(count)]


def launch(
    request: Request,
    options: WorkerOptions,
    *,
    workers: int | None = None,
    gpus: list[int] | None = None,
    workers_per_gpu: int = 1,
    trials: int | None = None,
) -> optuna.Study:
    """Create or resume the study (a study file's, or a stored one's), then run local workers
    until its budget is met. This process joins the study once and runs a lone CPU worker on what
    it joined; worker processes join it themselves, each once.

    `trials` (the `--trials` flag) sets the budget of a study that exists; a new study takes its
    budget from the study file. Every worker reads the budget from the study, so all agree at once.
    """
    use_gpus = options.device in ("auto", "cuda") and torch.cuda.is_available()
    slots = plan_workers(
        workers,
        gpus,
        workers_per_gpu,
        gpu_count=torch.cuda.device_count() if use_gpus else 0,
        cpu_count=usable_cpus(),  # under SLURM or taskset, those this process was given
    )
    log_warnings(options.log_format)  # an outage waited out at once is a line of the log too
    in_processes = len(slots) > 1 or slots[0].gpu is not None
    # the server imports torch while this process joins (run_study may have started it sooner)
    context = start_worker_server() if in_processes else None
    joined = join(request, options, create=True, trials=trials)
    config, study, data = joined.config, joined.study, joined.data
    stored = study.get_trials(deepcopy=False)  # one read serves both questions
    left = nothing_left(study, config, stored)
    # Said once, rather than by each worker started to find nothing; a trial running or queued
    # still has a worker's tidying to do (a dead one failed, a retry closed past the budget)
    if left is not None and not has_unfinished(stored):
        WorkerLog(options.log_format, config.study.name).note(
            f"study {config.study.name!r} has nothing left to run: {left.why}; {left.remedy}"
        )
        # The tidying a worker would have done: files of closed lineages a killed run left
        folder = trial_files.study_folder(joined.checkpoint_root, study)
        trial_files.remove_closed_lineages(folder, stored)
        return study
    if options.progress:
        print(
            f"study {config.study.name!r} in {masked(options.storage_url)}: budget "
            f"{budget(study, config.study.trials)} trials, "
            f"{len(data.train)} train / {len(data.val)} val images, {len(slots)} worker(s)"
            + (
                f" on GPU(s) {sorted({slot.gpu for slot in slots if slot.gpu is not None})}"
                if slots[0].gpu is not None
                else ""
            ),
            file=sys.stderr,
        )
    if context is None:
        # one CPU worker runs here, on the study and data joined above
        with stop_on_signals(options.log_format) as stop:
            work(joined, options, stop=stop)
        signalled = stop.cause is not None
    else:
        stop_asked = threading.Event()  # by a signal
        killed = _run_processes(context, config, options, slots, study, stop_asked)
        if killed:
            _finish_after_killed(joined, options, killed)
        signalled = stop_asked.is_set()
    if signalled:  # and stopped cleanly: its caller stops too (the CLI exits 0, as asked)
        raise SearchStopped(study)
    return study


def _run_processes(
    context: ForkServerContext,
    config: StudyConfig,
    options: WorkerOptions,
    slots: list[WorkerSlot],
    study: optuna.Study,
    stop_asked: threading.Event,
) -> list[str]:
    """Run the worker processes to their end, stopping them on a signal (which sets
    `stop_asked`); the workers killed by a signal nobody here sent (the kernel's out-of-memory
    killer, a `kill -9`), and those whose end the server they were forked from did not live to
    tell (search.launch.watched), each as a line that says so."""
    # The launcher has just reached the storage: a worker that cannot, starting seconds later
    # (minutes on a loaded machine), meets an outage, and waits it out as a cluster worker does.
    quiet = replace(
        options,
        progress=False,
        device="cuda" if slots[0].gpu is not None else options.device,
        wait_for_storage=max(options.wait_for_storage, WORKER_WAIT_FOR_STORAGE_SECONDS),
    )
    workers: list[Watched] = []

    def start(slot: WorkerSlot) -> Watched:
        process = context.Process(
            target=_worker_process,
            args=(config, quiet, slot, flag_naming(), _inherited(slot)),  # our flags' names
            name=f"hpsearch-worker-{slot.index}",
        )
        process.start()
        return Watched(process)

    # From the first start: a SIGTERM while they start (docker stop) had killed this process and
    # left those started training unwatched
    with _forward_stop(workers, stop_asked):
        try:
            for slot in slots:
                if stop_asked.is_set():
                    break  # asked to stop while they start: no more of them
                workers.append(start(slot))
        except BaseException:  # a fork refused (no memory, a process limit), its server gone
            # Those started would train on unwatched, behind the error: each checkpoints and
            # queues its trial, as on a SIGTERM, before the error is told
            _stop_all(workers)
            raise
        if stop_asked.is_set():  # again: one started as the signal came was not yet in the list
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
        log = WorkerLog(options.log_format, config.study.name)
        with StudyProgress(study, budget(study, config.study.trials), enabled=options.progress):
            _supervise(workers, slots, start, stop_asked, log)
    unseen = [worker.process for worker in workers if worker.end_unseen]
    processes = [worker.process for worker in workers if not worker.end_unseen]
    exits = {process.name: process.exitcode or 0 for process in processes}  # all joined: not None
    if stop_asked.is_set() and INTERRUPTED_EXIT in exits.values():
        raise KeyboardInterrupt  # a second Ctrl-C stopped them at once, as its line said it would
    failed = [process for process in processes if exits[process.name] > 0]
    if failed:
        names = ", ".join(process.name for process in failed)
        # Each said why in one line when the error was the user's to fix (exit 2)
        error = WorkerFailed if all(p.exitcode == USER_ERROR_EXIT for p in failed) else RuntimeError
        raise error(f"worker process(es) {names} exited with an error; see the messages above")
    if stop_asked.is_set():  # a worker ended by a signal after a stop was asked: as asked
        return []
    return [
        f"{_named(worker)} was killed by {_killed_by(worker)}"
        for worker in workers
        if not worker.end_unseen and _killed_by(worker) is not None
    ] + _ended_unseen(unseen)


def _supervise(
    workers: list[Watched],
    slots: list[WorkerSlot],
    start: Callable[[WorkerSlot], Watched],
    stop_asked: threading.Event,
    log: WorkerLog,
) -> None:
    """Wait for every worker to end. One killed by a signal nobody here sent (the kernel's
    out-of-memory killer, a `kill -9`) is started again in its slot, up to MAX_RESTARTS times a
    slot: else its GPU stood idle for the rest of the study. The new worker finds its trial's
    worker gone and resumes the trial from its last checkpoint (search.run.liveness)."""
    running = list(range(len(workers)))
    restarts = [0] * len(workers)
    while running:
        ended = first_to_end([workers[index] for index in running])
        index = workers.index(ended)
        running.remove(index)
        killed_by = _killed_by(ended)
        if killed_by is None or stop_asked.is_set():
            continue
        if restarts[index] == MAX_RESTARTS:
            log.note(
                f"{_named(ended)} was killed by {killed_by} after {MAX_RESTARTS} restarts: not "
                "started again"
            )
            continue
        try:
            workers[index] = start(slots[index])
        except OSError as error:  # a fork refused (no memory): what it left runs at the end
            log.note(f"{_named(ended)} was killed by {killed_by}; no new one starts: {error}")
            continue
        restarts[index] += 1
        running.append(index)
        if stop_asked.is_set():  # the stop came as it started: it was not yet among those told
            workers[index].send_signal(signal.SIGTERM)
        log.note(
            f"{_named(ended)} was killed by {killed_by}; started again as pid "
            f"{workers[index].process.pid} (restart {restarts[index]} of {MAX_RESTARTS})"
        )


def _killed_by(worker: Watched) -> str | None:
    """The signal that ended `worker` ("SIGKILL"), or None when it exited by itself."""
    exitcode = worker.process.exitcode
    if exitcode is None or exitcode >= 0:
        return None
    try:
        return signal.Signals(-exitcode).name
    except ValueError:  # a real-time signal Python has no name for (SIGRTMIN+3)
        return f"signal {-exitcode}"


def _named(worker: Watched) -> str:
    return f"{worker.process.name} (pid {worker.process.pid})"


def _stop_all(workers: list[Watched]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait()


def _ended_unseen(processes: list[BaseProcess]) -> list[str]:
    """One line for the workers whose server died before it could say how they ended."""
    if not processes:
        return []
    names = ", ".join(f"{process.name} (pid {process.pid})" for process in processes)
    whose = "its" if len(processes) == 1 else "their"
    return [f"{names} ended unseen ({whose} worker server died first)"]


def _finish_after_killed(joined: Joined, options: WorkerOptions, killed: list[str]) -> None:
    """Run here what killed workers left: their trials (RUNNING, with no process behind them) are
    failed and queued to resume by the worker's own sweep, and run with anything else the budget
    still holds; the others finished theirs. Without it, a worker killed while the others had run
    out of new trials would leave its trial RUNNING until some later run of the study."""
    log = WorkerLog(options.log_format, joined.config.study.name)
    log.note(f"worker {', '.join(killed)}; this process runs what it left")
    with stop_on_signals(options.log_format) as stop:
        work(joined, replace(options, progress=False), stop=stop)


def _inherited(slot: WorkerSlot) -> Inherited:
    """What the worker takes from this process as it starts; a GPU worker sees only its GPU."""
    environment = dict(os.environ)
    if slot.gpu is not None:
        environment["CUDA_VISIBLE_DEVICES"] = _visible_device(slot.gpu, os.environ)
    return Inherited(environment)


def _visible_device(gpu: int, environment: Mapping[str, str]) -> str:
    """The CUDA_VISIBLE_DEVICES of a worker on GPU `gpu` as this process numbers it: torch counts
    the GPUs this process sees, so under CUDA_VISIBLE_DEVICES=2,3 (a scheduler's, another user's
    share of the machine) GPU 0 is the entry "2", and a UUID or MIG id is passed on as given."""
    entries = [entry.strip() for entry in environment.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    entries = [entry for entry in entries if entry]
    return entries[gpu] if gpu < len(entries) else str(gpu)


@contextmanager
def _forward_stop(workers: list[Watched], stop_asked: threading.Event) -> Iterator[None]:
    """SIGTERM (docker stop) is passed on to the workers. Ctrl-C reaches them through the
    terminal; a SIGINT sent to this process alone (`kill -INT`) reaches them as a SIGTERM, which a
    worker already stopping on the terminal's SIGINT ignores (a second SIGINT would stop it at
    once). Either sets `stop_asked`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, frame: FrameType | None) -> None:
        stop_asked.set()
        for worker in workers:
            worker.send_signal(signal.SIGTERM)

    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, forward) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _worker_process(
    config: StudyConfig,
    options: WorkerOptions,
    slot: WorkerSlot,
    naming: Callable[[str], str] | None,
    inherited: Inherited,
) -> None:
    inherited.adopt()
    own_bar_lock()
    one_line_warnings()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    torch.set_num_threads(slot.threads)  # local workers share the cores; more threads only contend
    stop: threading.Event | None = None
    try:
        with flags_named(naming), stop_on_signals(options.log_format) as stop:
            # A SIGTERM or Ctrl-C sent since the fork waited, blocked as in the server: it
            # stops us now, cleanly
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
            run_worker(config, options, stop=stop)
    except HpsearchError as error:  # the user's to act on (a full disk, a damaged storage)
        last_line(options.log_format, "error", str(error))
        sys.exit(USER_ERROR_EXIT)
    except BaseException:
        if interrupted_at_once(stop):
            sys.exit(INTERRUPTED_EXIT)  # a second Ctrl-C: out at once, as asked, no traceback
        raise


def own_bar_lock() -> None:
    """tqdm's default lock is a multiprocessing one: a named semaphore, which a worker killed by
    SIGKILL (the out-of-memory killer) never unlinks, so `run` ended with multiprocessing's
    "resource_tracker: ... leaked semaphore objects" warning. A worker draws no bars beside
    another process's: a lock of its own threads serves."""
    tqdm.set_lock(threading.RLock())
