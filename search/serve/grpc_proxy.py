"""`hpsearch grpc-proxy`: Optuna's gRPC storage proxy in front of PostgreSQL.

Past a few dozen workers, each holding its own database connections and polling the trials
table, PostgreSQL spends its time on connections; workers that talk to one proxy share its
connection pool and its cache of finished trials instead.

Workers connect with `--storage grpc://HOST:PORT`. Their heartbeats are trial attributes
(search.run.liveness), which the proxy carries like any other, so a trial whose worker dies
behind the proxy is failed and retried as it is on a direct connection.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.storages import RDBStorage

from search.errors import StorageMissing
from search.serve.dashboard import bracketed, check_port_free, warn_if_exposed
from search.study.optuna_compat import cached_storage, database_behind, grpc_proxy_server
from search.study.resilience import first_line
from search.study.storage import GRPC_DEFAULT_PORT, open_storage
from search.study.writable import check_may_create, check_writable
from search.url_secrets import masked

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = GRPC_DEFAULT_PORT  # Optuna's default for GrpcStorageProxy
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # every interface of this machine
STOP_GRACE_SECONDS = 5  # for the workers' calls in hand when the proxy is stopped


def serve(url: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the storage until interrupted."""
    check_port_free(host, port)  # before the storage is opened (and perhaps made)
    # Optuna's cache of finished trials, which the proxy's docs ask for (as get_storage adds it)
    storage = cached_storage(_open_for_workers(url))
    warn_if_exposed(
        host, "the gRPC proxy has no login: anyone who reaches it can write to every study"
    )
    print(
        f"gRPC storage proxy on {bracketed(host)}:{port} for {masked(url)}; workers connect with "
        f"--storage grpc://{bracketed(_reachable_name(host))}:{port}",
        flush=True,
    )
    failed_calls = logging.getLogger("grpc._server")  # where gRPC logs a call that raised
    said = FailedCallLines()
    failed_calls.addHandler(said)
    # gRPC reads the address as `host:port`: an IPv6 one unbracketed failed with a traceback
    server = grpc_proxy_server(storage, bracketed(host), port)
    try:
        with _terminated_as_interrupted():
            server.start()
            server.wait_for_termination()
    except KeyboardInterrupt:
        print("grpc-proxy stopped", file=sys.stderr, flush=True)
    finally:
        # Calls in hand end, none starts; then no connection is open to the storage, and SQLite
        # removes its -wal and -shm files
        server.stop(grace=STOP_GRACE_SECONDS).wait()
        failed_calls.removeHandler(said)
        backend = database_behind(storage)
        if isinstance(backend, RDBStorage):
            backend.engine.dispose()


@contextmanager
def _terminated_as_interrupted() -> Iterator[None]:
    """SIGTERM (`docker compose stop`, Kubernetes, `kill`) stops the proxy as Ctrl-C does: it had
    killed it, its storage's connections left open. Only the main thread is given signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, signal.default_int_handler)  # Python's, for Ctrl-C
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


class FailedCallLines(logging.Handler):
    """A worker's call that the storage failed inside the proxy (its database dropped, a role's
    rights revoked), as one line on the proxy's terminal, in the storage's own words. gRPC logs it
    with a traceback to a logger it gives a NullHandler, so the proxy said nothing while its
    workers failed, and they were told only Optuna's guess ("invalid data in the commit")."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        reason = first_line(error) if error is not None else record.getMessage()
        print(
            f"hpsearch: grpc-proxy: a worker's call failed: {reason}", file=sys.stderr, flush=True
        )


def _reachable_name(host: str) -> str:
    """What a worker connects to: a wildcard address (every interface) is none a worker can
    use, so the line names this machine instead of telling workers `grpc://0.0.0.0:PORT`."""
    return socket.gethostname() if host in WILDCARD_HOSTS else host


def _open_for_workers(url: str) -> optuna.storages.BaseStorage:
    """The storage the workers will write through, made if there is none yet, with the checks
    `run` makes first: a role that may not write there, or may not use the schema that holds
    Optuna's tables (which would make it look empty, and a second storage be made beside it), is
    named now, with the GRANT that lets it, not at a worker's first write."""
    try:
        storage = open_storage(url, create=False)
    except StorageMissing:  # no SQLite file yet, or no Optuna tables in the database
        check_may_create(url)
        return open_storage(url)
    check_writable(storage, url)
    return storage
