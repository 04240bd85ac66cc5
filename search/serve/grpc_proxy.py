"""`hpsearch grpc-proxy`: Optuna's gRPC storage proxy in front of PostgreSQL.

Past a few dozen workers, each holding its own database connections and polling the trials
table, PostgreSQL spends its time on connections; workers that talk to one proxy share its
connection pool and its cache of finished trials instead.

Workers connect with `--storage grpc://HOST:PORT`. Their heartbeats are trial attributes
(search.run.liveness), which the proxy carries like any other, so a trial whose worker dies
behind the proxy is failed and retried as it is on a direct connection.
"""

from __future__ import annotations

import optuna

from search.errors import StorageMissing
from search.serve.dashboard import check_port_free, warn_if_exposed
from search.study.optuna_compat import cached_storage
from search.study.storage import GRPC_DEFAULT_PORT, open_storage
from search.study.writable import check_may_create, check_writable
from search.url_secrets import masked

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = GRPC_DEFAULT_PORT  # Optuna's default for GrpcStorageProxy


def serve(url: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the storage until interrupted."""
    check_port_free(host, port)  # before the storage is opened (and perhaps made)
    # Optuna's cache of finished trials, which the proxy's docs ask for (as get_storage adds it)
    storage = cached_storage(_open_for_workers(url))
    warn_if_exposed(
        host, "the gRPC proxy has no login: anyone who reaches it can write to every study"
    )
    print(
        f"gRPC storage proxy on {host}:{port} for {masked(url)}; workers connect with "
        f"--storage grpc://{host}:{port}",
        flush=True,
    )
    optuna.storages.run_grpc_proxy_server(storage, host=host, port=port)


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
