"""What `hpsearch status` does once parsed: a table (or JSON) of the studies in a storage."""

from __future__ import annotations

import argparse
import json
import sys

from search.api import studies
from search.results.status import format_status


def status(args: argparse.Namespace) -> int:
    found = studies.status(args.study, storage=args.storage)
    for line in found.skipped:  # on standard error, so that --json's output stays JSON
        print(f"hpsearch: {line}", file=sys.stderr)
    print(json.dumps(found.rows, indent=2) if args.json else format_status(found.rows))
    return 0
