"""What `hpsearch train` does once parsed: merge the settings, train, print each epoch and the
result (search.api.training trains; this reads the flags and prints). Torch is loaded only when it
runs (search.cli.common.runs_from)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from search.api import training
from search.studyfile.train_file import RUN_SETTINGS
from trainer import TrainConfig
from trainer.errors import NonFiniteLossError


def resolve_settings(
    args: argparse.Namespace,
) -> tuple[TrainConfig, dict[str, Any], dict[str, Any]]:
    """Merge defaults, the settings file and flags; return (config, run settings, provenance).
    A bad setting's error starts with where it came from: its flag or the settings file."""
    flags = {
        key: value
        for key, value in vars(args).items()
        if value is not None and key in _known_keys()
    }
    return training.train_settings(args.config, flags)


def _known_keys() -> set[str]:
    return set(TrainConfig.__dataclass_fields__) | set(RUN_SETTINGS)


def run_train(args: argparse.Namespace) -> int:
    config, run, provenance = resolve_settings(args)
    try:
        trained = training.train(
            config,
            **run,
            resume=args.resume,
            progress=True,
            bars=sys.stderr.isatty(),  # as `run` and `evaluate`: bars on a terminal, not in a log
            out=sys.stderr if args.json else sys.stdout,
        )
    except NonFiniteLossError as error:
        print(f"hpsearch: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**trained.summary(), "provenance": provenance}))
    else:
        last = trained.result.history[-1]
        # The weights are the last epoch's: said where the best epoch was another
        which = (
            ""
            if last.epoch == trained.best.epoch
            else (f", the last epoch's (epoch {last.epoch}, val top-1 {last.val_top1:.2%})")
        )
        print(
            f"best val top-1 {trained.best.val_top1:.2%} at epoch {trained.best.epoch}; "
            f"{trained.result.seconds:.0f} s, {trained.result.images_per_second:.0f} images/s\n"
            f"weights: {trained.weights}{which} (score them with `hpsearch evaluate "
            f"{trained.weights} --data ...`)"
        )
    return 0
