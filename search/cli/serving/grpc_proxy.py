"""What `hpsearch grpc-proxy` does once parsed: Optuna's gRPC proxy in front of the storage."""

from __future__ import annotations

import argparse

from search import locations
from search.serve import grpc_proxy


def serve_grpc_proxy(args: argparse.Namespace) -> int:
    grpc_proxy.serve(locations.storage_url(args.storage), host=args.host, port=args.port)
    return 0
