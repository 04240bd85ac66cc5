"""What `hpsearch export` does once parsed: the best trial's settings written, and shown on the
study's note (search.api.studies.export_best, which checks the flags' values before it opens the
storage)."""

from __future__ import annotations

import argparse
import sys

from search.api import studies
from search.results.export import output_format
from search.studyfile.train_file import PROVENANCE, dump_settings


def write_export(args: argparse.Namespace) -> int:
    settings = studies.export_best(
        args.study,
        storage=args.storage,
        path=args.output,
        format=args.format,
        top=args.top,
        checkpoint_dir=args.checkpoint_dir,
    )
    if args.output is None:
        sys.stdout.write(dump_settings(settings, output_format(None, args.format)))
    else:
        print(
            f"wrote trial {settings[PROVENANCE]['trial']} of study {args.study!r} to {args.output}",
            file=sys.stderr,
        )
    return 0
