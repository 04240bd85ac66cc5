"""What `hpsearch export` does once parsed: the best trial's settings written, and shown on the
study's note (search.api.studies.export_best)."""

from __future__ import annotations

import argparse
import sys

from search.api import studies
from search.errors import ConfigError
from search.results.export import check_export_paths, output_format
from search.studyfile.train_file import PROVENANCE, dump_settings


def write_export(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, but got {args.top}")
    fmt = output_format(args.output, args.format)  # refused before the storage is opened
    if args.output is not None:  # and so are the paths it writes, named by their flag
        check_export_paths(args.output, fmt, "-o")
    settings = studies.export_best(
        args.study,
        storage=args.storage,
        path=args.output,
        format=fmt,
        top=args.top,
        checkpoint_dir=args.checkpoint_dir,
    )
    if args.output is None:
        sys.stdout.write(dump_settings(settings, fmt))
    else:
        print(
            f"wrote trial {settings[PROVENANCE]['trial']} of study {args.study!r} to {args.output}",
            file=sys.stderr,
        )
    return 0
