"""`hpsearch dashboard` and `grpc-proxy`: a study served to people and to many workers. Their
handlers: dashboard.py and grpc_proxy.py."""

from __future__ import annotations

import argparse

from search.cli.common import Command, add_artifacts, line_flag, runs_from

# By name, not as modules: this package's own dashboard and grpc_proxy (the handlers) would
# replace search.serve's modules of the same names here once imported.
from search.serve.dashboard import DEFAULT_HOST as DASHBOARD_HOST
from search.serve.dashboard import DEFAULT_PORT as DASHBOARD_PORT
from search.serve.grpc_proxy import DEFAULT_HOST as PROXY_HOST
from search.serve.grpc_proxy import DEFAULT_PORT as PROXY_PORT


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535 (0, "any free port", would serve where nobody knows to look)."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port number, 1 to 65535, but got {text!r}")
    return int(text)


def _dashboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        type=line_flag,
        default=DASHBOARD_HOST,
        help="address to bind (default 127.0.0.1; the dashboard has no login, "
        "so reach it from elsewhere through an SSH tunnel)",
    )
    parser.add_argument(
        "--port", type=port_number, default=DASHBOARD_PORT, help=f"default {DASHBOARD_PORT}"
    )
    add_artifacts(parser)
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="print a line per HTTP request (default: only the startup line and errors; the page "
        "asks the server every few seconds)",
    )


def _grpc_proxy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", type=line_flag, default=PROXY_HOST, help="address to bind (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=PROXY_PORT,
        help=f"default {PROXY_PORT}",
    )


COMMANDS = {
    "dashboard": Command(
        "serve optuna-dashboard on the study storage",
        _dashboard_arguments,
        runs_from("search.cli.serving.dashboard", "serve_dashboard"),
        shared=("storage",),
    ),
    "grpc-proxy": Command(
        "serve the storage to many workers through Optuna's gRPC proxy",
        _grpc_proxy_arguments,
        runs_from("search.cli.serving.grpc_proxy", "serve_grpc_proxy"),
        shared=("storage",),
        description="Optuna's gRPC storage proxy in front of the study storage, so that many "
        "workers share its connection pool and cache. Heartbeats are trial attributes, which it "
        "carries: a killed worker's trial behind it is retried as on a direct connection.",
    ),
}
