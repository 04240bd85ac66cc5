"""`hpsearch train`: one configuration, from a settings
file and flags, with progress and JSON out."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from search import locations
from search.cli.common import Command
from search.studyfile.settings_file import read_settings
from trainer import (
    CheckpointPolicy,
    EpochMetrics,
    TrainConfig,
    load_image_data,
    resolve_device,
    train,
)
from trainer.errors import ConfigError, NonFiniteLossError
from trainer.weights import WEIGHTS_NAME

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


def resolve_settings(
    args: argparse.Namespace,
) -> tuple[TrainConfig, dict[str, Any], dict[str, Any]]:
    """Merge defaults, the settings file and flags; return (config, run settings, provenance)."""
    values, provenance = read_settings(args.config) if args.config else ({}, {})
    flags = {key: value for key, value in vars(args).items() if value is not None}
    merged = {
        **RUN_DEFAULTS,
        **values,
        **{key: flags[key] for key in flags if key in _known_keys()},
    }
    run = {key: merged.pop(key) for key in RUN_SETTINGS if key in merged}
    where = str(args.config) if args.config else "the flags"
    return TrainConfig.from_dict(merged, where=where), run, provenance


def _known_keys() -> set[str]:
    return set(TrainConfig.__dataclass_fields__) | set(RUN_SETTINGS)


def run_train(args: argparse.Namespace) -> int:
    config, run, provenance = resolve_settings(args)
    if args.resume and not run.get("checkpoint_dir"):
        raise ConfigError("--resume needs --checkpoint-dir, the folder that holds the checkpoint")
    device = resolve_device(run["device"])
    policy = _checkpoint_policy(run)  # a bad interval is refused before the data is decoded
    human = sys.stderr if args.json else sys.stdout
    policy = _checkpoint_policy(run)  # a bad interval is refused before the data is decoded
    data = load_image_data(run["data"], config.image_size, cache_dir=_path(run.get("cache_dir")))
    print(
        f"training {config.model} on {data.source}: {len(data.train)} train / {len(data.val)} val "
        f"images, {len(data.classes)} classes, {device}",
        file=human,
        flush=True,
    )

    def report(epoch: int, metrics: EpochMetrics) -> None:
        print(_epoch_line(config, metrics), file=human, flush=True)

    try:
        result = train(
            config,
            data,
            report,
            device=device,
            checkpoints=policy,
            resume=args.resume,
            progress=True,
            compile=bool(run.get("compile")),
        )
    except NonFiniteLossError as error:
        print(f"hpsearch: {error}", file=sys.stderr)
        return 1
    weights = policy.folder / WEIGHTS_NAME
    if args.json:
        summary = {**result.summary(), "data": data.source, "weights": str(weights)}
        print(json.dumps({**summary, "provenance": provenance}))
    else:
        print(
            f"best val top-1 {result.best.val_top1:.2%} at epoch {result.best.epoch}; "
            f"{result.seconds:.0f} s, {result.images_per_second:.0f} images/s\n"
            f"weights: {weights} (score them with `hpsearch evaluate {weights} --data ...`)"
        )
    return 0


def _checkpoint_policy(run: dict[str, Any]) -> CheckpointPolicy:
    """Checkpoints and final weights always have a folder: --checkpoint-dir, else a new run
    folder under ./runs, so a finished run never drops its weights."""
    every_seconds = run.get("checkpoint_every_seconds")
    # Every epoch unless only a time interval was asked for.
    every_epochs = run.get("checkpoint_every", None if every_seconds else 1)
    folder = Path(run["checkpoint_dir"]) if run.get("checkpoint_dir") else _new_run_folder()
    return CheckpointPolicy(folder, every_epochs=every_epochs, every_seconds=every_seconds)


def _new_run_folder() -> Path:
    """runs/train-DATE-TIME, not made yet: the first checkpoint makes it, so a run refused before
    training leaves nothing behind."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = RUNS_FOLDER / f"train-{stamp}"
    attempt = 1
    while folder.exists():  # two runs started in one second
        folder, attempt = RUNS_FOLDER / f"train-{stamp}-{attempt}", attempt + 1
    return folder


def _epoch_line(config: TrainConfig, metrics: EpochMetrics) -> str:
    return (
        f"epoch {metrics.epoch}/{config.epochs}  val top-1 {metrics.val_top1:.2%}  "
        f"val loss {metrics.val_loss:.3f}  train loss {metrics.train_loss:.3f}  "
        f"{metrics.images_per_second:.0f} img/s  {metrics.seconds:.1f} s"
    )


def _path(value: Any) -> Path | None:
    return Path(value) if value else None


COMMANDS = {"train": Command("train one configuration", add_arguments, run_train)}
