"""What `hpsearch report` does once parsed: draw a study's figures with Plotly, imported only when
it runs (search.cli.common.runs_from), since `--help` and `status` need none of it."""

from __future__ import annotations

import argparse
import sys

import optuna

from search import locations
from search.results import png
from search.results.page import build_report
from search.serve.notes import attach_report
from search.study.recorded import find_study
from search.study.storage import masked, open_storage
from search.study.writable import NOTE_TABLES, refused_write
from trainer.outputs import check_output_file, check_output_folder


def write_report(args: argparse.Namespace) -> int:
    check_output_file(args.output, "-o", "report.html")  # before the storage is opened
    if args.png_dir is not None:
        check_output_folder(args.png_dir, "--png-dir")
    url = locations.storage_url(args.storage)
    storage = open_storage(url, create=False)  # a mistyped storage is refused, not created
    studies = [find_study(storage, name) for name in dict.fromkeys(args.study)]
    # A reader who may not write the storage still gets the page; only the dashboard's copy and
    # note are left out, and said so
    refusal = refused_write(storage, NOTE_TABLES)
    report = build_report(studies, storage_label=masked(url))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report.html, encoding="utf-8")
    print(f"wrote {args.output}: {report.drawn}" + (":" if report.notes else ""))
    for line in report.not_drawn:  # which views are missing, and why, not just how many
        print(f"  {line}")
    if refusal is not None:
        print(
            f"hpsearch: warning: {args.output} is not attached to "
            f"{_names(studies)} for the dashboard: storage {masked(url)} refuses writes: {refusal}",
            file=sys.stderr,
        )
    else:
        artifacts = locations.artifact_dir(url, args.artifacts)
        for study in studies:  # the team finds the latest report in the dashboard, on the note
            attach_report(study, args.output, artifacts)
    if args.png_dir is None:
        return 0
    try:
        written = png.write_pngs(report.figures, args.png_dir)
    # kaleido reports a browser that will not start or render in errors of its own making.
    except Exception as error:  # noqa: BLE001
        print(
            f"hpsearch: no PNGs written: kaleido failed ({type(error).__name__}: {error})",
            file=sys.stderr,
        )
        return 1
    if written is None:
        print(f"hpsearch: no PNGs written: {png.png_obstacle()}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} PNG files into {args.png_dir}")
    return 0


def _names(studies: list[optuna.Study]) -> str:
    names = ", ".join(repr(study.study_name) for study in studies)
    return f"study {names}" if len(studies) == 1 else f"studies {names}"
