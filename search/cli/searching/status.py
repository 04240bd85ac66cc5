"""What `hpsearch status` does once parsed: a table (or JSON) of the studies in a storage."""

from __future__ import annotations

import argparse
import json

from search.api import studies


def status(args: argparse.Namespace) -> int:
    found = studies.status(args.study, storage=args.storage)
    print(json.dumps(found.rows, indent=2) if args.json else found)
    return 0
