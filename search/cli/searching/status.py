"""What `hpsearch status` does once parsed: a table (or JSON) of the studies in a storage."""

from __future__ import annotations

import argparse
import json

from search import locations
from search.results.status import format_status, study_status
from search.study.storage import open_storage


def status(args: argparse.Namespace) -> int:
    storage = open_storage(locations.storage_url(args.storage), create=False)
    rows = study_status(storage, args.study)  # a mistyped storage is refused, not created
    print(json.dumps(rows, indent=2) if args.json else format_status(rows))
    return 0
