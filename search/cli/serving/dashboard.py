"""What `hpsearch dashboard` does once parsed: optuna-dashboard on an existing storage."""

from __future__ import annotations

import argparse

from search import locations
from search.serve import dashboard
from search.study.storage import require_existing_storage


def serve_dashboard(args: argparse.Namespace) -> int:
    url = locations.storage_url(args.storage)
    require_existing_storage(url)  # a mistyped SQLite path is refused, not served empty
    dashboard.serve(
        url,
        host=args.host,
        port=args.port,
        artifact_dir=locations.artifact_dir(url, args.artifacts),
        access_log=args.access_log,
    )
    return 0
