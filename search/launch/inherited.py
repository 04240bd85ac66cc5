"""What a local worker process takes from `hpsearch run` as it starts: the environment and the
standard output and error that the run has at that moment, as a spawned process would.

A worker forked from the server process (search.launch.worker_server) would otherwise have the
server's, as they were when the server started: another launch's CUDA_VISIBLE_DEVICES, a
notebook's earlier redirection, another test's captured output.
"""

from __future__ import annotations

import os
from multiprocessing import reduction
from typing import Any

STDIO = (1, 2)  # standard output and error, by descriptor: a worker writes its lines to both


class Inherited:
    """Made in the launcher, given to a worker process as an argument, `adopt`ed there first."""

    def __init__(self, environment: dict[str, str], stdio: tuple[Any, ...] = ()) -> None:
        self.environment = environment
        self.stdio = stdio  # in the worker: the launcher's descriptors, as multiprocessing sent

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as a worker starts, the one moment multiprocessing can send descriptors to it
        # (DupFd: how its own Connection objects travel)
        return (Inherited, (self.environment, tuple(map(reduction.DupFd, STDIO))))

    def adopt(self) -> None:
        """In the worker, before anything reads them: the launcher's environment and output."""
        os.environ.clear()
        os.environ.update(self.environment)
        for descriptor, received in zip(STDIO, self.stdio, strict=True):
            launchers = received.detach()
            os.dup2(launchers, descriptor)
            os.close(launchers)
