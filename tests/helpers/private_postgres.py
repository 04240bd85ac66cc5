"""A PostgreSQL cluster of our own, on a free port, that a test or a benchmark may stop and start:
an outage the shared server on 5432 (tests/helpers/postgres.py) must never see.

initdb and pg_ctl refuse to run as root, so each runs as the `postgres` user (runuser); the
cluster lives in a short folder under /tmp, which also holds its Unix socket (whose path has a
length limit) and its log.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

DATABASE = "studies"


class ClusterUnavailable(RuntimeError):
    """initdb, pg_ctl or runuser is missing, or the postgres user does not exist."""


class PrivateCluster:
    """A running cluster: `url` reaches its database; `stop` and `start` make an outage."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        self.data = folder / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/{DATABASE}"
        self._options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"

    def connect(self, **options: Any) -> psycopg.Connection:
        """A plain connection to the cluster's database, as the superuser."""
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=DATABASE, **options
        )

    def start(self) -> None:
        self._pg_ctl("-o", self._options, "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast` closes every connection and stops; `immediate` stops as a crash would."""
        self._pg_ctl("-m", mode, "stop")

    def _pg_ctl(self, *args: str) -> None:
        _as_postgres(
            "pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", *args, timeout=60
        )


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A new cluster with an empty database `studies`, removed (stopped at once) afterwards."""
    missing = [tool for tool in ("initdb", "pg_ctl", "runuser") if shutil.which(tool) is None]
    if missing:
        raise ClusterUnavailable(f"{', '.join(missing)} not installed")
    folder = Path(f"/tmp/hpsearch-pg-{uuid.uuid4().hex[:8]}")
    folder.mkdir(mode=0o777)
    try:
        shutil.chown(folder, "postgres", "postgres")
    except (LookupError, PermissionError) as error:
        folder.rmdir()
        raise ClusterUnavailable(f"cannot give {folder} to the postgres user: {error}") from None
    cluster = PrivateCluster(folder, _free_port())
    try:
        _as_postgres(
            "initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres", timeout=120
        )
        cluster.start()
        with psycopg.connect(
            host="127.0.0.1", port=cluster.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")
        yield cluster
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(cluster.data)]
            + ["-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)


def _as_postgres(*command: str, timeout: float) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *command],
        check=True,
        capture_output=True,
        timeout=timeout,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
