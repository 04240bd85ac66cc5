"""What `hpsearch train` does once parsed: merge the settings, train, print each epoch and the
result. Torch is loaded only when it runs (search.cli.common.runs_from)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search.cli.training import RUN_DEFAULTS, RUN_SETTINGS
from search.locations import RUNS_FOLDER, refuse_a_file_in_the_way
from search.studyfile.train_file import read_settings
from trainer import TrainConfig
from trainer.checkpoint import CheckpointPolicy
from trainer.data import load_image_data
from trainer.device import resolve_device
from trainer.epoch import EpochMetrics
from trainer.errors import ConfigError, NonFiniteLossError, NoSpaceLeft
from trainer.files import WEIGHTS_NAME
from trainer.listing import Listing
from trainer.loop import refuse_other_classes, resumable_classes, train


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
    try:
        config = TrainConfig.from_dict(merged, where=where)
    except ConfigError as error:
        raise ConfigError(f"{_source(error.setting, flags, args.config)}{error}") from None
    return config, run, provenance


def _source(setting: str | None, flags: dict[str, Any], config_file: Path | None) -> str:
    """Where a bad setting came from, as the start of its error: its flag or the settings file."""
    if setting is None:
        return ""
    if setting in flags:
        return f"--{setting.replace('_', '-')}: "
    return f"{config_file}: " if config_file is not None else ""


def _known_keys() -> set[str]:
    return set(TrainConfig.__dataclass_fields__) | set(RUN_SETTINGS)


def run_train(args: argparse.Namespace) -> int:
    config, run, provenance = resolve_settings(args)
    if args.resume and not run.get("checkpoint_dir"):
        raise ConfigError("--resume needs --checkpoint-dir, the folder that holds the checkpoint")
    device = resolve_device(run["device"])
    policy = _checkpoint_policy(run)  # a bad interval is refused before the data is decoded
    # A checkpoint of other settings is refused now, and one of other classes once the data's
    # folder is listed: both before anything is decoded
    classes = resumable_classes(config, policy) if args.resume else None
    human = sys.stderr if args.json else sys.stdout
    data = load_image_data(
        run["data"],
        config.image_size,
        cache_dir=_path(run.get("cache_dir")),
        check=None if classes is None else _same_classes(classes, policy),
    )
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
    if result.weights_not_saved is not None:
        # A run trained to have weights: without them it failed, its epochs' scores printed above
        raise NoSpaceLeft(
            f"{result.weights_not_saved}: the scores above stand, but no weights were saved; "
            "free space there and train again"
        )
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
    refuse_a_file_in_the_way(folder)
    return CheckpointPolicy(folder, every_epochs=every_epochs, every_seconds=every_seconds)


def _same_classes(classes: tuple[str, ...], policy: CheckpointPolicy) -> Callable[[Listing], None]:
    def check(listing: Listing) -> None:
        refuse_other_classes(classes, listing.classes, policy.path)

    return check


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
