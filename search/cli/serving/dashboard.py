"""What `hpsearch dashboard` does once parsed: optuna-dashboard on an existing storage."""

from __future__ import annotations

import argparse

from search import locations
from search.serve import dashboard


def serve_dashboard(args: argparse.Namespace) -> int:
    url = locations.storage_url(args.storage)
    dashboard.serve(
        url,
        host=args.host,
        port=args.port,
        artifact_dir=locations.artifact_dir(url, args.artifacts),
        access_log=args.access_log,
    )
    return 0
