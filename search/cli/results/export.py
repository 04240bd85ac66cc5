"""What `hpsearch export` does once parsed: the best trial's settings written, and shown on the
study's note."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search import locations
from search.errors import ConfigError
from search.results.export import export, output_format, weights_beside
from search.serve.notes import attach_best_params
from search.study.recorded import checkpoint_dir, find_study
from search.study.storage import masked, open_storage
from search.study.writable import NOTE_TABLES, refused_write
from trainer.outputs import check_output_file


def write_export(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, but got {args.top}")
    fmt = output_format(args.output, args.format)  # refused before the storage is opened
    if args.output is not None:  # and so are the paths it writes
        check_output_file(args.output, "-o", f"best.{fmt}")
        _check_weights_beside(args.output)
    url = locations.storage_url(args.storage)
    # A mistyped storage is refused, not created
    storage = open_storage(url, create=False)
    study = find_study(storage, args.study)
    # A reader who may not write the storage still gets the settings; only the study's note goes
    # without them, and says so
    refusal = refused_write(storage, NOTE_TABLES)
    root = locations.checkpoint_root(args.checkpoint_dir, checkpoint_dir(study))
    exported = export(
        study, output=args.output, fmt=fmt, top=args.top, storage_url=url, checkpoint_root=root
    )
    if refusal is None:  # the dashboard shows the latest export on the study's note
        attach_best_params(study, exported.text, exported.fmt)
    else:
        print(
            f"hpsearch: warning: the exported settings are not shown on the note of study "
            f"{study.study_name!r} in the dashboard: storage {masked(url)} refuses writes: "
            f"{refusal}",
            file=sys.stderr,
        )
    if args.output is None:
        sys.stdout.write(exported.text)
    else:
        print(
            f"wrote trial {exported.trial} of study {study.study_name!r} to {args.output}",
            file=sys.stderr,
        )
    return 0


def _check_weights_beside(output: Path) -> None:
    weights = weights_beside(output)
    if weights.is_dir():
        raise ConfigError(
            f"{weights} is a folder, but export copies the best trial's weights there, beside -o "
            f"{output}; move the folder or name another -o"
        )
