"""`hpsearch report`, `export`, `trials` and `evaluate`: what a study found, as a page, a settings
file that retrains its winner, a table of every trial, and a score of saved weights. Report and
export also attach what they wrote to the study, so the dashboard shows it. Their handlers:
report.py, export.py, trials.py and evaluate.py."""

from __future__ import annotations

import argparse

from search.cli.common import (
    WEIGHTS,
    Command,
    add_artifacts,
    add_cache_dir,
    add_checkpoint_dir,
    add_data,
    add_device,
    add_image_size,
    add_study,
    path_flag,
    runs_from,
)
from search.results.export import WEIGHTS_SUFFIX
from search.studyfile.train_file import FORMATS


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    add_study(parser, "repeatable")
    parser.add_argument(
        "-o",
        "--output",
        type=path_flag,
        required=True,
        metavar="FILE.html",
        help="where to write it",
    )
    add_artifacts(parser)
    parser.add_argument(
        "--png-dir",
        type=path_flag,
        help="also write every figure as a PNG here (needs kaleido and a Chrome or Chromium)",
    )


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    add_study(parser, "required")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="toml, json or yaml (default: from -o's suffix, else json)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=path_flag,
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
    add_checkpoint_dir(parser, "export")


def _trials_arguments(parser: argparse.ArgumentParser) -> None:
    add_study(parser, "required")
    parser.add_argument(
        "-o",
        "--output",
        type=path_flag,
        metavar="FILE.csv",
        help="write here (default: standard output)",
    )


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "weights",
        type=path_flag,
        metavar="WEIGHTS",
        help="weights.pt from train, or NAME.weights.pt from export",
    )
    add_data(parser, required=True)
    add_image_size(parser, WEIGHTS)
    add_cache_dir(parser)
    add_device(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument(
        "-o",
        "--output",
        type=path_flag,
        metavar="FILE.html",
        help="also write the confusion matrix as a self-contained Plotly page",
    )


COMMANDS = {
    "report": Command(
        "one self-contained HTML report of one or more studies",
        _report_arguments,
        runs_from("search.cli.results.report", "write_report"),
        shared=("storage",),
        description="One self-contained HTML page of one or more studies (the factor figures "
        "pool the trials of every --study), attached to each study for the dashboard.",
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
    "trials": Command(
        "every trial of a study as a CSV table",
        _trials_arguments,
        runs_from("search.cli.results.trials", "write_trials"),
        shared=("storage",),
        description="One CSV row per trial, by number: trial, state (complete, pruned, paused, "
        "promoted, fail, stopped, running, waiting), val_top1 (a complete trial's value: its best "
        "epoch's, 0..1), last_val_top1 (its last epoch's, for any trial that scored one), the "
        "factors and any other sampled parameter (param_NAME where its name is one of these "
        "columns'), epochs_run, best_epoch, seconds (what its epochs_run took, those a "
        "continued trial restored included), continues "
        "(the trial a retry or promotion carries on) and fail_reason. A paused trial's queued "
        "continuation has no row until it runs.",
    ),
    "evaluate": Command(
        "score saved weights on a data set's val split",
        _evaluate_arguments,
        runs_from("search.cli.results.evaluate", "evaluate"),
    ),
}
