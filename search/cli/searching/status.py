"""What `hpsearch status` does once parsed: a table (or JSON) of the studies in a storage."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from search.api import studies
from search.results.status import format_status


def status(args: argparse.Namespace) -> int:
    found = studies.status(args.study, storage=args.storage)
    for line in found.skipped:  # on standard error, so that --json's output stays JSON
        print(f"hpsearch: {line}", file=sys.stderr)
    print(json_text(found.rows) if args.json else format_status(found.rows))
    return 0


def json_text(rows: list[dict]) -> str:
    """The rows as JSON that any parser reads: a value of inf or nan (a diverged trial of another
    tool's study, a setting) is null, not Python's `Infinity`, which JSON has not."""
    return json.dumps(_finite(rows), indent=2)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
