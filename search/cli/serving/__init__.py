"""`hpsearch dashboard` and `grpc-proxy`: a study served to people and to many workers. Their
handlers: dashboard.py and grpc_proxy.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from search import locations
from search.cli.common import Command, runs_from
from search.serve import dashboard, grpc_proxy


def _dashboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=dashboard.DEFAULT_HOST,
        help="address to bind (default 127.0.0.1; the dashboard has no login, "
        "so reach it from elsewhere through an SSH tunnel)",
    )
    parser.add_argument("--port", type=int, default=dashboard.DEFAULT_PORT, help="default 8080")
    parser.add_argument(
        "--artifacts",
        type=Path,
        metavar="DIR",
        help=f"folder of report artifacts (default: ${locations.ARTIFACTS_ENV}, else 'artifacts' "
        "next to the SQLite file or in the current folder)",
    )


def _grpc_proxy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=grpc_proxy.DEFAULT_HOST, help="address to bind (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=grpc_proxy.DEFAULT_PORT,
        help=f"default {grpc_proxy.DEFAULT_PORT}",
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
        description="Optuna's gRPC storage proxy in front of the study storage. It carries no "
        "heartbeat: a killed worker's trial stays RUNNING behind it, so workers that must be "
        "retried connect to PostgreSQL directly.",
    ),
}
