"""`hpsearch grpc-proxy` in front of the chaos run's database, in a process of its own on a fixed
port, so that the workers reach the storage through it (`--through-proxy`) and a fault may kill
it and start it again where the workers expect it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.chaos.search_run import start_logged
from search.study.grpc_client import grpc_proxy_answers

HOST = "127.0.0.1"
START_SECONDS = 120.0  # a loaded machine imports Optuna and gRPC slowly


class ProxyDown(RuntimeError):
    """The proxy did not answer within START_SECONDS of its start."""


class Proxy:
    """The proxy process: `start` waits until it answers, `kill` is a SIGKILL."""

    def __init__(self, storage: str, log: Path) -> None:
        self.storage, self.log = storage, log
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """What the workers are given as --storage."""
        return f"grpc://{HOST}:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "search", "grpc-proxy", "--storage", self.storage,
            "--host", HOST, "--port", str(self.port),
        ]  # fmt: skip

    def start(self) -> float:
        """Start it and wait until it answers; the time it did."""
        self.process = start_logged(self.command(), self.log, "proxy")
        if not grpc_proxy_answers(f"{HOST}:{self.port}", START_SECONDS):
            code = self.process.poll()
            raise ProxyDown(
                f"the gRPC proxy on port {self.port} did not answer within {START_SECONDS:.0f} s"
                + (f" (it exited {code})" if code is not None else "")
                + f"; see {self.log}"
            )
        return time.time()

    def kill(self) -> None:
        """SIGKILL it, as a crash or a lost node would end it, and reap it."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        self.process = None


@contextmanager
def running_proxy(storage: str, log: Path) -> Iterator[Proxy]:
    """A proxy in front of `storage`, answering, and killed afterwards."""
    proxy = Proxy(storage, log)
    try:
        proxy.start()
        yield proxy
    finally:
        proxy.kill()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]
