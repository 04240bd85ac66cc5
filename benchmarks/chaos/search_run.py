"""`python -m search run STUDY --workers N ...` as a user runs it: a process group of its own (so
the whole run can be killed at once), its output appended to one log, started again at will."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Exit:
    started: float  # time.time() of the start that ended here
    ended: float
    code: int


@dataclass
class SearchRun:
    study_file: Path
    storage: str
    workers: int
    checkpoints: Path
    cache: Path
    log: Path
    trials_per_worker: int = 1
    process: subprocess.Popen | None = None
    started: float = 0.0
    exits: list[Exit] = field(default_factory=list)

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "search", "run", str(self.study_file),
            "--workers", str(self.workers), "--storage", self.storage,
            "--checkpoint-dir", str(self.checkpoints), "--cache-dir", str(self.cache),
            "--device", "cpu", "--no-progress",
            "--trials-per-worker", str(self.trials_per_worker),
        ]  # fmt: skip

    def start(self) -> None:
        self.process = start_logged(self.command(), self.log, "run")
        self.started = time.time()

    def poll(self) -> int | None:
        """None while the run runs; its exit status once (recorded in `exits`) it has ended."""
        if self.process is None:
            return None
        code = self.process.poll()
        if code is not None:
            self.exits.append(Exit(self.started, time.time(), code))
            self.process = None
        return code

    def worker_processes(self) -> list[psutil.Process]:
        """The processes that train: the workers forked from the run's worker server (those it
        left behind when killed among them), or the run itself with one worker."""
        if self.process is None:
            return []
        try:
            run = psutil.Process(self.process.pid)
            forked = forked_workers(run) + _orphaned_workers(run)
        except psutil.Error:
            return []
        return forked if self.workers > 1 else [run]

    def worker_server(self) -> psutil.Process | None:
        """The run's live worker server (multiprocessing's forkserver), if it has one."""
        if self.process is None or self.workers == 1:
            return None
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children():
                if _is_forkserver(child) and child.status() != psutil.STATUS_ZOMBIE:
                    return child
        return None

    def kill(self) -> None:
        """SIGKILL the whole run, its workers with it, and wait until none of them is left."""
        if self.process is None:
            return
        group = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait()
        self.poll()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _group_alive(group):
            time.sleep(0.1)


def forked_workers(run: psutil.Process) -> list[psutil.Process]:
    """The live workers `run` (`hpsearch run`, or a process that launched workers) forked from its
    worker server: multiprocessing's forkserver, its child beside its resource tracker."""
    return [worker for server in run.children() for worker in _forked_by(server)]


def _forked_by(server: psutil.Process) -> list[psutil.Process]:
    try:
        if not _is_forkserver(server):
            return []
        return [worker for worker in server.children() if worker.status() != "zombie"]
    except psutil.Error:
        return []


def _orphaned_workers(run: psutil.Process) -> list[psutil.Process]:
    """The live workers of `run`'s process group whose worker server died: forked from it (its
    command line), with a parent that is neither the run nor a server."""
    orphans = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) != run.pid or not _is_forkserver(process):
                continue
            parent = process.parent()
            adopted = parent is None or (parent.pid != run.pid and not _is_forkserver(parent))
            if adopted and process.status() != psutil.STATUS_ZOMBIE:
                orphans.append(process)
        except (OSError, psutil.Error):
            continue
    return orphans


def _is_forkserver(process: psutil.Process) -> bool:
    """A process of multiprocessing's forkserver: the server, or a worker forked from it."""
    return "multiprocessing.forkserver" in " ".join(process.cmdline())


def _group_alive(group: int) -> bool:
    """Whether a process of the group lives on (a zombie does not: it trains nothing)."""
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == group and process.status() != "zombie":
                return True
        except (OSError, psutil.Error):
            continue
    return False


def start_logged(command: list[str], log: Path, what: str) -> subprocess.Popen:
    """`command` in a session of its own (a group: the run and its workers; a Ctrl-C meant for
    the harness is not theirs), with this checkout first on its path, its output appended to
    `log` after a line saying when `what` started."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), _path()]))}
    with log.open("ab") as out:
        out.write(f"\n=== chaos: {what} started at {time.strftime('%H:%M:%S')} ===\n".encode())
        out.flush()
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=log.parent,
            env=env,
            start_new_session=True,
        )


def _path() -> str:
    return os.environ.get("PYTHONPATH", "")
