"""`hpsearch train`: one configuration, from a settings file and flags, with progress and JSON
out. Its handler: train.py."""

from __future__ import annotations

import argparse

from search.cli.common import (
    TRAIN_CONFIG,
    Command,
    add_data,
    add_epochs,
    add_image_size,
    add_run_settings,
    path_flag,
    runs_from,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=path_flag, help="settings file (TOML, JSON or YAML); flags override it"
    )
    add_data(parser, source=TRAIN_CONFIG)
    add_image_size(parser, TRAIN_CONFIG)
    add_epochs(parser, TRAIN_CONFIG)
    parser.add_argument("--batch-size", type=int, help="default 64")
    parser.add_argument(
        "--model",
        help="a torchvision classification model: resnet18 (default), resnet34, resnet50, ...",
    )
    parser.add_argument(
        "--optimizer", help="sgd, adam, adamw, radam, nadam or ranger (default ranger)"
    )
    parser.add_argument("--lr", type=float, help="peak learning rate (default 8e-3)")
    parser.add_argument("--eps", type=float, help="adaptive optimizers only")
    parser.add_argument("--momentum", type=float, help="sgd only (default 0)")
    parser.add_argument("--nesterov", action="store_true", default=None, help="sgd only")
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument(
        "--schedule", help="constant, cosine, onecycle or flat_cosine (default cosine)"
    )
    parser.add_argument("--warmup-epochs", type=float)
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument(
        "--min-scale", type=float, help="smallest crop area fraction (default 0.35)"
    )
    parser.add_argument("--seed", type=int)
    add_run_settings(parser, TRAIN_CONFIG)
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        help="epochs between checkpoints (default 1; none when "
        "only --checkpoint-every-seconds is given)",
    )
    parser.add_argument(
        "--checkpoint-every-seconds", type=float, help="seconds of training between checkpoints"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    # None is "not given", so that --config decides, then RUN_DEFAULTS (resolve_settings)
    parser.set_defaults(device=None, compile=None)


COMMANDS = {
    "train": Command(
        "train one configuration",
        add_arguments,
        runs_from("search.cli.training.train", "run_train"),
    )
}
