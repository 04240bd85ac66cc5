"""The faults a chaos run injects, each as a user's machine would meet it; every choice (which
worker, how long, how much of a file) is drawn from the run's seeded random generator."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from benchmarks.chaos.proxy import Proxy
from benchmarks.chaos.search_run import SearchRun
from benchmarks.chaos.watch import Watch
from tests.helpers.private_postgres import PrivateCluster

KINDS = (
    "kill_worker",  # SIGKILL one worker process
    "kill_run",  # SIGKILL the whole run (its process group), then start it again at once
    "kill_server",  # SIGKILL the server the run forks its workers from: they train on
    "term_worker",  # SIGTERM one worker: it stops at a clean point
    "stop_worker",  # SIGSTOP one worker past the heartbeat grace, then SIGCONT
    "db_outage",  # stop the database for a few seconds, then start it
    "fill_disk",  # fill the checkpoint tmpfs with one big file, then free it
    "truncate_checkpoint",  # cut a trial's last.pt short
    "restart_proxy",  # SIGKILL the gRPC proxy, start it again on its port (--through-proxy only)
)
WORKER_FAULTS = ("kill_worker", "term_worker", "stop_worker")
FILLER = "chaos-filler"  # the big file of fill_disk, in the checkpoint folder's root


@dataclass
class Fault:
    kind: str
    study: str
    started: float  # time.time() when it struck
    ended: float = 0.0  # when it was over (the database or proxy back, the worker going on...)
    detail: str = ""
    trials: list[int] = field(default_factory=list)  # the trials it hit
    lineages: list[int] = field(default_factory=list)  # their first attempts
    pid: int | None = None  # the worker process it hit, for a worker fault

    def as_dict(self, origin: float) -> dict:
        return {
            "kind": self.kind,
            "study": self.study,
            "at_seconds": round(self.started - origin, 1),
            "lasted_seconds": round(self.ended - self.started, 1),
            "detail": self.detail,
            "trials": self.trials,
            "lineages": self.lineages,
        }


@dataclass
class Injector:
    rng: random.Random
    cluster: PrivateCluster
    checkpoints: Path
    watch: Watch
    grace_seconds: float
    kinds: tuple[str, ...]
    disk: bool  # the checkpoint folder is a tmpfs of our own, which may be filled
    proxy: Proxy | None = None  # the workers' gRPC proxy, which may be restarted

    def applicable(self, run: SearchRun, study: str) -> list[str]:
        """The kinds that can strike now: a worker fault needs a worker that trains a trial, a
        truncation a checkpoint; the whole run can be killed once it trains, and the proxy it
        goes through (if any) restarted under its workers' calls. (A proxy that is down while
        `run` starts is refused at once, as designed, unless --wait-for-storage says to wait.)"""
        training = {trial.pid for trial in self.watch.running(study)}
        workers = [p for p in run.worker_processes() if p.pid in training]
        possible = {"db_outage", "fill_disk"} if self.disk else {"db_outage"}
        if workers:
            possible |= {*WORKER_FAULTS, "kill_run"}
            if run.worker_server() is not None:
                possible.add("kill_server")
            if self.proxy is not None:
                possible.add("restart_proxy")
        if self._checkpoint_files():
            possible.add("truncate_checkpoint")
        return [kind for kind in self.kinds if kind in possible]

    def inject(self, kind: str, run: SearchRun, study: str) -> Fault:
        running = self.watch.running(study)
        fault = Fault(kind, study, time.time())
        fault.trials = [trial.number for trial in running]
        fault.lineages = [trial.lineage for trial in running]
        getattr(self, f"_{kind}")(fault, run, running)
        fault.ended = fault.ended or time.time()
        return fault

    def _worker(self, fault: Fault, run: SearchRun, running: list) -> psutil.Process | None:
        """A worker that trains, drawn at random; the fault's trials narrowed to its own."""
        training = {trial.pid for trial in running}
        workers = sorted(
            (p for p in run.worker_processes() if p.pid in training), key=lambda p: p.pid
        )
        if not workers:
            fault.detail = "no worker trains now: nothing done"
            return None
        worker = self.rng.choice(workers)
        fault.pid = worker.pid
        mine = [trial for trial in running if trial.pid == worker.pid]
        fault.trials = [trial.number for trial in mine]
        fault.lineages = [trial.lineage for trial in mine]
        return worker

    def _kill_worker(self, fault: Fault, run: SearchRun, running: list) -> None:
        self._signal(fault, run, running, signal.SIGKILL)

    def _term_worker(self, fault: Fault, run: SearchRun, running: list) -> None:
        self._signal(fault, run, running, signal.SIGTERM)

    def _signal(self, fault: Fault, run: SearchRun, running: list, signum: int) -> None:
        worker = self._worker(fault, run, running)
        if worker is not None:
            _send(worker, signum)
            fault.detail = f"{signal.Signals(signum).name} worker pid {worker.pid}"

    def _stop_worker(self, fault: Fault, run: SearchRun, running: list) -> None:
        worker = self._worker(fault, run, running)
        if worker is None:
            return
        held = self.grace_seconds + self.rng.uniform(1, 4)
        _send(worker, signal.SIGSTOP)
        time.sleep(held)
        _send(worker, signal.SIGCONT)
        fault.detail = f"SIGSTOP worker pid {worker.pid} for {held:.1f} s, then SIGCONT"

    def _kill_run(self, fault: Fault, run: SearchRun, running: list) -> None:
        pid = run.process.pid if run.process is not None else None
        run.kill()
        fault.ended = time.time()
        run.start()
        fault.detail = f"SIGKILL process group {pid}, started again"

    def _kill_server(self, fault: Fault, run: SearchRun, running: list) -> None:
        server = run.worker_server()
        if server is None:
            fault.detail = "no worker server now: nothing done"
            return
        _send(server, signal.SIGKILL)
        fault.detail = f"SIGKILL worker server pid {server.pid}"

    def _db_outage(self, fault: Fault, run: SearchRun, running: list) -> None:
        mode = self.rng.choice(("fast", "immediate"))
        down = self.rng.uniform(2, 8)
        self.cluster.stop(mode)
        time.sleep(down)
        self.cluster.start()
        fault.detail = f"database stopped ({mode}) for {down:.1f} s"

    def _restart_proxy(self, fault: Fault, run: SearchRun, running: list) -> None:
        """Over once the proxy answers again: the workers may reach the storage from then on."""
        assert self.proxy is not None  # applicable() offers this fault only with a proxy
        down = self.rng.uniform(2, 8)
        self.proxy.kill()
        time.sleep(down)
        restarted = time.time()
        fault.ended = self.proxy.start()
        fault.detail = (
            f"gRPC proxy SIGKILLed, down {down:.1f} s, answering "
            f"{fault.ended - restarted:.1f} s after its start"
        )

    def _fill_disk(self, fault: Fault, run: SearchRun, running: list) -> None:
        filler = self.checkpoints / FILLER
        written = _fill(filler)
        held = self.rng.uniform(3, 10)
        time.sleep(held)
        filler.unlink(missing_ok=True)
        fault.detail = f"checkpoint tmpfs filled ({written / 2**20:.0f} MiB) for {held:.1f} s"

    def _truncate_checkpoint(self, fault: Fault, run: SearchRun, running: list) -> None:
        files = self._checkpoint_files()
        if not files:
            fault.detail = "no checkpoint to truncate: nothing done"
            return
        path = self.rng.choice(files)
        try:
            size = path.stat().st_size
            cut = self.rng.randrange(0, max(1, size // 2))
            os.truncate(path, cut)
        except FileNotFoundError:  # replaced or removed in the meantime
            fault.detail = f"{path} went away before it was truncated"
            return
        lineage = int(path.parent.name.removeprefix("trial-"))
        fault.lineages = [lineage]
        fault.trials = [trial.number for trial in running if trial.lineage == lineage]
        fault.detail = f"{path.relative_to(self.checkpoints)} cut from {size} to {cut} bytes"

    def _checkpoint_files(self) -> list[Path]:
        return sorted(self.checkpoints.glob("*/trial-*/last.pt"))


def _send(process: psutil.Process, signum: int) -> None:
    with contextlib.suppress(psutil.Error):
        process.send_signal(signum)


def _fill(path: Path) -> int:
    """Write until the file system is full; the bytes written."""
    chunk = b"\0" * 2**20
    written = 0
    with path.open("wb", buffering=0) as file:  # unbuffered: closing it writes nothing more
        try:
            while True:
                written += file.write(chunk) or 0
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    return written
