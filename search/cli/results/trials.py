"""What `hpsearch trials` does once parsed: the study's trials (search.api.studies.trials), as
CSV, to a file or standard output."""

from __future__ import annotations

import argparse
import sys

from search.api import studies
from search.results.trials_table import write_trials_csv


def write_trials(args: argparse.Namespace) -> int:
    rows = studies.trials(args.study, storage=args.storage, path=args.output)
    if args.output is None:
        write_trials_csv(rows, sys.stdout)
    else:
        print(f"wrote {len(rows)} trials of study {args.study!r} to {args.output}", file=sys.stderr)
    return 0
