"""What `hpsearch status` does once parsed: a table (or JSON) of the studies in a storage."""

from __future__ import annotations

import argparse
import json
import sys

from search import locations
from search.results.status import StorageStatus, format_status, storage_status, study_status
from search.study.storage import open_storage


def status(args: argparse.Namespace) -> int:
    # A mistyped storage is refused, not created
    storage = open_storage(locations.storage_url(args.storage), create=False)
    if args.study is not None:
        found = StorageStatus(study_status(storage, args.study), skipped=[])
    else:
        found = storage_status(storage)
    for line in found.skipped:  # on standard error, so that --json's output stays JSON
        print(f"hpsearch: {line}", file=sys.stderr)
    print(json.dumps(found.rows, indent=2) if args.json else format_status(found.rows))
    return 0
