"""What `hpsearch report` does once parsed: the page written (search.api.report.write_report, which
draws the figures with Plotly, imported only when this runs: search.cli.common.runs_from, since
`--help` and `status` need none of it), then what it holds said, and the PNGs if asked for."""

from __future__ import annotations

import argparse
import sys

from search.api import report as reporting
from search.errors import ConfigError
from search.results import png
from trainer.outputs import check_output_folder


def write_report(args: argparse.Namespace) -> int:
    if args.png_dir is not None:  # before the storage is opened, as write_report checks -o
        check_output_folder(args.png_dir, "--png-dir")
        obstacle = png.png_obstacle()
        if obstacle is not None:  # said before the page, its copy and the note are written
            raise ConfigError(f"--png-dir: {obstacle}; or leave --png-dir out")
    report = reporting.write_report(
        args.study, args.output, storage=args.storage, artifacts=args.artifacts
    )
    print(f"wrote {args.output}: {report.drawn}" + (":" if report.notes else ""))
    for line in report.not_drawn:  # which views are missing, and why, not just how many
        print(f"  {line}")
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
    if written is None:  # kaleido or its browser went between the check and now
        print(f"hpsearch: no PNGs written: {png.png_obstacle()}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} PNG files into {args.png_dir}")
    return 0
