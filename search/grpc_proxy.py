"""`hpsearch grpc-proxy`: Optuna's gRPC storage proxy in front of PostgreSQL.

Past a few dozen workers, each holding its own database connections and polling the trials
table, PostgreSQL spends its time on connections; workers that talk to one proxy share its
connection pool and its cache of finished trials instead.

The proxy carries no heartbeat: Optuna records heartbeats only through a storage it can reach
directly, so a trial whose worker is killed behind the proxy stays RUNNING, and neither the
heartbeat nor `fail_stale_trials` ever fails it (they judge only trials that recorded a heartbeat).
Workers that should be retried when they die connect to PostgreSQL directly.
"""

from __future__ import annotations

import argparse

import optuna

from search.dashboard import warn_if_exposed
from search.storage import STORAGE_ENV, masked, open_storage, resolve_storage_url

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 13000  # Optuna's default for GrpcStorageProxy


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "grpc-proxy", help="serve the storage to many workers through Optuna's gRPC proxy",
        description="Optuna's gRPC storage proxy in front of the study storage. It carries no heartbeat: "
                    "a killed worker's trial stays RUNNING behind it, so workers that must be retried "
                    "connect to PostgreSQL directly.")
    parser.add_argument("--storage", metavar="URL",
                        help=f"storage URL (default: ${STORAGE_ENV} or sqlite:///hpsearch.db)")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.set_defaults(handler=_grpc_proxy)


def _grpc_proxy(args: argparse.Namespace) -> int:
    serve(resolve_storage_url(args.storage), host=args.host, port=args.port)
    return 0


def serve(url: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the storage until interrupted."""
    # get_storage adds Optuna's cache of finished trials, which the proxy's docs ask for.
    storage = optuna.storages.get_storage(open_storage(url))
    warn_if_exposed(host, "the gRPC proxy has no login: anyone who reaches it can write to every study")
    print(f"gRPC storage proxy on {host}:{port} for {masked(url)}; no heartbeat behind it", flush=True)
    optuna.storages.run_grpc_proxy_server(storage, host=host, port=port)
