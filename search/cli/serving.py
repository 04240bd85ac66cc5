"""`hpsearch dashboard` and `grpc-proxy`: a study served to people and to many workers."""

from __future__ import annotations

import argparse
from pathlib import Path

from search import locations
from search.cli.common import Command
from search.serve import dashboard, grpc_proxy
from search.study.storage import require_existing_storage


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


def _dashboard(args: argparse.Namespace) -> int:
    url = locations.storage_url(args.storage)
    require_existing_storage(url)  # a mistyped SQLite path is refused, not served empty
    dashboard.serve(
        url,
        host=args.host,
        port=args.port,
        artifact_dir=locations.artifact_dir(url, args.artifacts),
    )
    return 0


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


def _grpc_proxy(args: argparse.Namespace) -> int:
    grpc_proxy.serve(locations.storage_url(args.storage), host=args.host, port=args.port)
    return 0


COMMANDS = {
    "dashboard": Command(
        "serve optuna-dashboard on the study storage",
        _dashboard_arguments,
        _dashboard,
        shared=("storage",),
    ),
    "grpc-proxy": Command(
        "serve the storage to many workers through Optuna's gRPC proxy",
        _grpc_proxy_arguments,
        _grpc_proxy,
        shared=("storage",),
        description="Optuna's gRPC storage proxy in front of the study storage. It carries no "
        "heartbeat: a killed worker's trial stays RUNNING behind it, so workers that must be "
        "retried connect to PostgreSQL directly.",
    ),
}
