"""`hpsearch report`, `export` and `evaluate`: what a study found, as a page, a settings file that
retrains its winner, and a score of saved weights. Report and export also attach what they wrote
to the study, so the dashboard shows it. Their handlers: report.py, export.py and evaluate.py."""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna

from search import locations
from search.cli.common import Command, runs_from
from search.results.export import WEIGHTS_SUFFIX
from search.study.storage import open_storage
from search.studyfile.train_file import FORMATS


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--study",
        action="append",
        required=True,
        metavar="NAME",
        help="a study to report; repeat for several (the factor figures pool their trials)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE.html", help="where to write it"
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        metavar="DIR",
        help=f"artifact folder the dashboard serves the report from (default: "
        f"${locations.ARTIFACTS_ENV}, or artifacts/ beside a SQLite file)",
    )
    parser.add_argument(
        "--png-dir",
        type=Path,
        help="also write every figure as a PNG here (needs kaleido and a Chrome or Chromium)",
    )


def existing_storage(url: str) -> optuna.storages.BaseStorage:
    # A mistyped SQLite path or database is refused, never created by a command that reads
    return open_storage(url, create=False)


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, metavar="NAME", help="the study to export from")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="toml, json or yaml (default: from -o's suffix, else json)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write here (.toml, .json, .yaml or .yml); the best trial's kept weights, if any, "
        f"are copied beside it as NAME{WEIGHTS_SUFFIX}",
    )
    parser.add_argument(
        "--top",
        type=int,
        default=1,
        metavar="K",
        help="also list the runners-up, K trials in all, under provenance.runners_up (default 1)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        help=f"where the workers kept trial weights (default: ${locations.CHECKPOINTS_ENV}, the "
        "study's [checkpoint] dir, or the user cache)",
    )


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "weights",
        type=Path,
        metavar="WEIGHTS",
        help="weights.pt from train, or NAME.weights.pt from export",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="image folder with train/ and val/, a .tar.gz of one, or "
        "imagenette-160 | imagenette-320 | imagenette-full",
    )
    parser.add_argument(
        "--image-size", type=int, help="px (default: the size the weights were trained at)"
    )
    parser.add_argument("--cache-dir", type=Path, help="where decoded images are cached")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE.html",
        help="also write the confusion matrix as a self-contained Plotly page",
    )


COMMANDS = {
    "report": Command(
        "one self-contained HTML report of one or more studies",
        _report_arguments,
        runs_from("search.cli.results.report", "write_report"),
        shared=("storage",),
    ),
    "export": Command(
        "the best trial's settings, as a file `hpsearch train --config` retrains",
        _export_arguments,
        runs_from("search.cli.results.export", "write_export"),
        shared=("storage",),
        description="Write the best complete trial's full training settings and a [provenance] "
        "table. JSON on standard output unless -o is given. With --top K, the best trial's "
        "settings stay at the top level (train trains it) and the next K-1, in rank order, are "
        "listed under provenance.runners_up as {trial, value, settings}.",
    ),
    "evaluate": Command(
        "score saved weights on a data set's val split",
        _evaluate_arguments,
        runs_from("search.cli.results.evaluate", "evaluate"),
    ),
}
