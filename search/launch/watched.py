"""Knowing when a local worker ends, whatever becomes of the server it was forked from.

multiprocessing learns of a forked worker's end from the forkserver's server process, through a
pipe. Were that server killed (the kernel's out-of-memory killer, a stray `kill`), every pipe would
close at once and every worker would seem to have ended with status 255 while each trains on. A
pidfd (Linux 5.3 and later) is the kernel's own handle on the worker: readable once it ends, and a
signal sent through it reaches that process and none that took its pid since. Where there is none
(macOS), the pipe is all there is.
"""

from __future__ import annotations

import os
import select
import signal
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

# What multiprocessing reports for a forked worker whose server closed the pipe without saying
# how the worker ended: the server died first
END_UNSEEN = 255
SIGNAL_BEAT_SECONDS = 0.5


class Watched:
    """A started worker process, waited for and signalled through its pidfd where there is one."""

    def __init__(self, process: BaseProcess):
        self.process = process
        self._pidfd = _pidfd_of(process)

    def wait(self) -> None:
        """Until the worker ends, even if the server it was forked from ended first."""
        if self._pidfd is not None:
            waiting = select.poll()
            waiting.register(self._pidfd, select.POLLIN)  # readable once the worker has ended
            waiting.poll()
            os.close(self._pidfd)
            self._pidfd = None
        self.process.join()

    def fileno(self) -> int:
        """What becomes readable once the worker has ended: its pidfd, else the server's pipe."""
        return self._pidfd if self._pidfd is not None else self.process.sentinel

    def send_signal(self, signum: int) -> None:
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signum)
            elif self.process.is_alive():
                os.kill(self.process.pid, signum)  # type: ignore[arg-type]  # started: has a pid
        except ProcessLookupError:  # it ended meanwhile
            pass

    @property
    def end_unseen(self) -> bool:
        """Whether the worker's exit status went with its server (it ended; how is not known)."""
        return self.process.exitcode == END_UNSEEN


def first_to_end(workers: list[Watched]) -> Watched:
    """The first of `workers` to end (one that ended already, if any), waited for."""
    by_handle = {worker.fileno(): worker for worker in workers}
    ready: list = []
    while not ready:
        # In beats: a signal the kernel gave another thread of this process (the progress bar's)
        # runs its Python handler only once the main thread runs again, not at the workers' end
        ready = wait(list(by_handle), timeout=SIGNAL_BEAT_SECONDS)
    ended = by_handle[ready[0]]
    ended.wait()
    return ended


def _pidfd_of(process: BaseProcess) -> int | None:
    if not hasattr(os, "pidfd_open") or process.pid is None:
        return None
    try:
        return os.pidfd_open(process.pid)
    except ProcessLookupError:  # it ended already; the pipe says how
        return None
