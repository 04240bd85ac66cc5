"""`hpsearch train`: one configuration, from a settings file and flags, with progress and JSON
out. Its handler: train.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from search import locations
from search.cli.common import Command, runs_from
from trainer.files import WEIGHTS_NAME

# Settings of the run that are not hyperparameters: where data, device and files are.
RUN_SETTINGS = (
    "data",
    "device",
    "compile",
    "cache_dir",
    "checkpoint_dir",
    "checkpoint_every",
    "checkpoint_every_seconds",
)
RUN_DEFAULTS = {"data": locations.DEFAULT_DATA, "device": "auto"}
RUNS_FOLDER = Path("runs")  # where a run without --checkpoint-dir keeps its files, like most tools


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="settings file (TOML, JSON or YAML); flags override it"
    )
    parser.add_argument(
        "--data",
        help="image folder with train/ and val/, a .tar.gz of one, or "
        "imagenette-160 | imagenette-320 | imagenette-full (downloaded)",
    )
    parser.add_argument(
        "--image-size", type=int, help="px, square side the network sees (default 128)"
    )
    parser.add_argument("--epochs", type=int, help="default 20")
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
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    parser.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="run the network through torch.compile "
        "(tens of seconds first; see benchmarks/RESULTS.md)",
    )
    parser.add_argument("--cache-dir", type=Path, help="where decoded images are cached")
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        help=f"folder for the latest checkpoint and the final {WEIGHTS_NAME} "
        f"(default: a new {RUNS_FOLDER}/train-DATE-TIME here)",
    )
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


COMMANDS = {
    "train": Command(
        "train one configuration",
        add_arguments,
        runs_from("search.cli.training.train", "run_train"),
    )
}
