"""What `hpsearch trials` does once parsed: the study's trials as CSV, to a file or standard
output."""

from __future__ import annotations

import argparse
import sys

from search import locations
from search.errors import ConfigError
from search.results.trials_table import write_trials_csv
from search.study.recorded import find_study
from search.study.storage import open_storage
from trainer.outputs import check_output_file


def write_trials(args: argparse.Namespace) -> int:
    output = args.output
    if output is not None:  # refused before anything opens
        if output.suffix.lower() != ".csv":
            raise ConfigError(f"-o writes CSV: name a .csv file, not {output}")
        check_output_file(output, "-o", "trials.csv")
    # A mistyped storage is refused, not created
    study = find_study(open_storage(locations.storage_url(args.storage), create=False), args.study)
    if output is None:
        write_trials_csv(study, sys.stdout)
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="", encoding="utf-8") as file:  # csv writes its own line ends
        rows = write_trials_csv(study, file)
    print(f"wrote {rows} trials of study {study.study_name!r} to {output}", file=sys.stderr)
    return 0
