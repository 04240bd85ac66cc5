"""What `hpsearch evaluate` does once parsed: score weights on a data set, so torch is loaded
only when it runs (search.cli.common.runs_from)."""

from __future__ import annotations

import argparse
import json
import sys

from search.api import training
from search.results import output_file
from search.results.confusion import write_confusion_page
from search.results.evaluation import format_evaluation
from trainer.outputs import check_output_file


def evaluate(args: argparse.Namespace) -> int:
    if args.output is not None:  # before the weights are read or an image decoded
        check_output_file(args.output, "-o", "confusion.html")
        # `evaluate W.pt -o W.pt` would replace the weights it scores with their page
        output_file.check_page_name(args.output, "-o", "the confusion matrix")
    evaluation = training.evaluate(
        args.weights,
        args.data,
        image_size=args.image_size,
        cache_dir=args.cache_dir,
        device=args.device,
        # A bar redrawn with \r belongs on a terminal; in a log file it is noise, as in `run`
        progress=sys.stderr.isatty(),
    )
    if args.output is not None:
        write_confusion_page(evaluation, args.output)
    print(json.dumps(evaluation.to_json()) if args.json else format_evaluation(evaluation))
    if args.output is not None:  # standard error: --json keeps standard output one JSON line
        print(f"wrote {args.output}: the confusion matrix", file=sys.stderr)
    return 0
