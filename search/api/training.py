"""Training and scoring one configuration from Python, as `hpsearch train` and `evaluate` do: the
command reads its flags and calls these.

Importing this module loads no torch: `train` and `evaluate` check their settings, paths and data
source first and import what trains and scores after, so a mistyped flag or path is refused in a
fraction of a second, not after torch's import (3 s), as `hpsearch run` refuses."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from search.locations import RUNS_FOLDER
from search.results.evaluation import Evaluation
from search.studyfile.train_file import PROVENANCE, RUN_DEFAULTS, RUN_SETTINGS, read_settings
from trainer import TrainConfig
from trainer.config import check_image_size_range
from trainer.errors import ConfigError, NoSpaceLeft
from trainer.files import CHECKPOINT_NAME, WEIGHTS_NAME, check_weights_path
from trainer.listing import Listing
from trainer.naming import named
from trainer.source_names import check_data_source

if TYPE_CHECKING:  # these load torch: imported where they run (see above)
    import torch

    from trainer.checkpoint import CheckpointPolicy
    from trainer.data import ImageData
    from trainer.epoch import EpochMetrics
    from trainer.loop import TrainResult

Settings = TrainConfig | Mapping[str, Any] | str | Path | None

logger = logging.getLogger("hpsearch.train")


@dataclass(frozen=True)
class TrainedRun:
    """One configuration trained: its result (`result.history`, a metrics row per epoch, and
    `result.config`), the weights file it wrote (which `evaluate` scores), the data it trained on,
    and the provenance of its settings."""

    result: TrainResult
    weights: Path
    data: str
    provenance: dict[str, Any]  # where the settings came from: an export's study and trial, or {}

    @property
    def best(self) -> EpochMetrics:
        """The epoch with the best val top-1: `best.val_top1` (0..1), `best.epoch`."""
        return self.result.best

    def summary(self) -> dict[str, Any]:
        """The run as plain data, as `hpsearch train --json` prints it."""
        return {
            **self.result.summary(),
            "data": self.data,
            "weights": str(self.weights),
            "provenance": self.provenance,
        }


def train(
    config: Settings = None,
    *,
    data: str | Path | None = None,
    device: str | None = None,
    compile: bool | None = None,
    cache_dir: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    checkpoint_every_seconds: float | None = None,
    resume: bool = False,
    progress: bool = True,
    bars: bool | None = None,
    out: TextIO | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    **settings: Any,
) -> TrainedRun:
    """Train one configuration, as `hpsearch train`: from a `TrainConfig`, a dict of settings (what
    `export_best` returns), a settings file (.toml, .json, .yaml, what `hpsearch export` writes),
    or nothing (the defaults), with any TrainConfig field given as a keyword on top (`epochs=3`,
    `lr=1e-3`). A keyword given as None leaves the setting to the file, then to the default.

    `data` is an image folder with train/ and val/, a .tar.gz of one, or imagenette-160 |
    imagenette-320 | imagenette-full (default: the file's, else imagenette-160); `device` auto,
    cpu, cuda, cuda:N or mps. Checkpoints and the final weights go to `checkpoint_dir` (default: a
    new runs/train-DATE-TIME here), every `checkpoint_every` epochs (default 1) and/or every
    `checkpoint_every_seconds`; `resume` continues from the checkpoint there. `progress` shows
    a line per epoch on `out` (default: standard output) and progress bars, unless `bars` says
    otherwise (a log file wants the lines, not bars redrawn with \\r); `on_epoch` is called
    with each epoch's metrics. A run that diverges raises `NonFiniteLossError`.
    """
    chosen, run, provenance = train_settings(
        config,
        {
            "data": data,
            "device": device,
            "compile": compile,
            "cache_dir": cache_dir,
            "checkpoint_dir": checkpoint_dir,
            "checkpoint_every": checkpoint_every,
            "checkpoint_every_seconds": checkpoint_every_seconds,
            **settings,
        },
    )
    if resume and not run.get("checkpoint_dir"):
        raise ConfigError(
            f"{named('resume')} needs {named('checkpoint_dir')}, the folder that holds the "
            "checkpoint"
        )
    check_data_source(run["data"])
    from trainer.device import resolve_device  # checks passed: what follows loads torch

    where = resolve_device(run["device"])
    policy = checkpoint_policy(run)  # a bad interval is refused before the data is decoded
    if not resume:
        _refuse_earlier_run(policy.folder)
    with _removed_unless_written(None if run.get("checkpoint_dir") else policy.folder):
        return _train(chosen, run, provenance, where, policy, resume, progress, bars, out, on_epoch)


def _train(
    chosen: TrainConfig,
    run: dict[str, Any],
    provenance: dict[str, Any],
    where: torch.device,
    policy: CheckpointPolicy,
    resume: bool,
    progress: bool,
    bars: bool | None,
    out: TextIO | None,
    on_epoch: Callable[[EpochMetrics], None] | None,
) -> TrainedRun:
    from trainer.data import load_image_data
    from trainer.loop import resumable_classes
    from trainer.loop import train as train_config

    # A checkpoint of other settings is refused now, and one of other classes once the data's
    # folder is listed: both before anything is decoded
    classes = resumable_classes(chosen, policy) if resume else None
    if resume and not policy.path.is_file():  # a first run of a script that always resumes
        logger.warning(
            f"{named('resume')}: no checkpoint at {policy.path} (a first run, or a mistyped "
            f"{named('checkpoint_dir')}?): training from epoch 1"
        )
    lines = (out or sys.stdout) if progress else None
    bars = progress if bars is None else bars
    images = load_image_data(
        run["data"],
        chosen.image_size,
        cache_dir=_path(run.get("cache_dir")),
        progress=bars,
        check=None if classes is None else _same_classes(classes, policy),
    )
    _say(lines, _header(chosen, images, str(where)))

    def report(epoch: int, metrics: EpochMetrics) -> None:
        _say(lines, _epoch_line(chosen, metrics))
        if on_epoch is not None:
            on_epoch(metrics)

    result = train_config(
        chosen,
        images,
        report,
        device=where,
        checkpoints=policy,
        resume=resume,
        progress=bars,
        compile=bool(run.get("compile")),
    )
    if result.weights_not_saved is not None:
        # A run trained to have weights: without them it failed, its epochs' scores reported
        raise NoSpaceLeft(
            f"{result.weights_not_saved}: the scores of its epochs stand, but no weights were "
            "saved; free space there (or make it writable) and train again"
        )
    return TrainedRun(result, policy.folder / WEIGHTS_NAME, images.source, provenance)


def train_settings(
    config: Settings, given: Mapping[str, Any]
) -> tuple[TrainConfig, dict[str, Any], dict[str, Any]]:
    """The training configuration, the run's settings (RUN_SETTINGS: data, device, files) and the
    provenance `config` carries (an export's): the defaults, then `config`'s values, then those
    `given` that are not None. A bad value's error starts with the settings file it came from,
    or, on the command line, with the flag that gave it (`--lr: `); a keyword's error names the
    keyword already."""
    values, provenance = _values(config)
    chosen = {key: value for key, value in given.items() if value is not None}
    merged = {**RUN_DEFAULTS, **values, **chosen}
    run = {key: merged.pop(key) for key in RUN_SETTINGS if key in merged}
    where = str(config) if isinstance(config, (str, Path)) else "the settings given"
    try:
        return TrainConfig.from_dict(merged, where=where), run, provenance
    except ConfigError as error:
        source = _source(error.setting, chosen, config)
        raise ConfigError(f"{source}{error}", setting=error.setting) from None


def _source(setting: str | None, given: Mapping[str, Any], config: Settings) -> str:
    """Where a bad setting came from, as the start of its error: its flag or the settings file."""
    if setting is None:
        return ""
    if setting in given:  # the error names the setting as a keyword, which may have been a flag
        return "" if named(setting) == setting else f"{named(setting)}: "
    return f"{config}: " if isinstance(config, (str, Path)) else ""


def _values(config: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    if config is None:
        return {}, {}
    if isinstance(config, TrainConfig):
        return config.to_dict(), {}
    if isinstance(config, Mapping):
        values = dict(config)
        return values, dict(values.pop(PROVENANCE, None) or {})
    return read_settings(config)


def checkpoint_policy(run: Mapping[str, Any]) -> CheckpointPolicy:
    """Checkpoints and final weights always have a folder: the run's checkpoint_dir, else a new run
    folder under ./runs, so a finished run never drops its weights."""
    from trainer.checkpoint import CheckpointPolicy

    every_seconds = run.get("checkpoint_every_seconds")
    # Every epoch unless only a time interval was asked for.
    every_epochs = run.get("checkpoint_every", None if every_seconds else 1)
    chosen = run.get("checkpoint_dir")
    # CheckpointPolicy refuses a bad interval, and a folder that is a file or lies under one,
    # before any data is read, and before a new run folder is made under RUNS_FOLDER
    policy = CheckpointPolicy(
        Path(chosen) if chosen else RUNS_FOLDER,
        every_epochs=every_epochs,
        every_seconds=every_seconds,
    )
    return policy if chosen else dataclasses.replace(policy, folder=_new_run_folder())


def _refuse_earlier_run(folder: Path) -> None:
    """A run that does not resume writes over the checkpoint and weights in its folder: an earlier
    run's there (the same --checkpoint-dir given twice) would be lost without a word."""
    found = [name for name in (CHECKPOINT_NAME, WEIGHTS_NAME) if (folder / name).exists()]
    if found:
        raise ConfigError(
            f"{named('checkpoint_dir')} {folder} holds an earlier run's {' and '.join(found)}: "
            f"add {named('resume')} to continue that run, or name another folder (left out, "
            f"each run gets a new {RUNS_FOLDER}/train-DATE-TIME)"
        )


def _same_classes(classes: tuple[str, ...], policy: CheckpointPolicy) -> Callable[[Listing], None]:
    from trainer.loop import refuse_other_classes

    def check(listing: Listing) -> None:
        refuse_other_classes(classes, listing.classes, policy.path)

    return check


def _new_run_folder() -> Path:
    """runs/train-DATE-TIME, made now: two runs started in one second each take their own (made at
    the first checkpoint, both had taken one name by then, and one's weights replaced the other's).
    `train` removes it, empty, when the run is refused or ends before writing anything."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in itertools.count():
        folder = RUNS_FOLDER / (f"train-{stamp}-{attempt}" if attempt else f"train-{stamp}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:  # another run's, started in the same second
            continue
    raise AssertionError("unreachable")


@contextmanager
def _removed_unless_written(folder: Path | None) -> Iterator[None]:
    """A run folder made for this run goes again if the run ends with nothing in it (refused once
    the data is listed, stopped before its first checkpoint): runs/ holds runs, not attempts."""
    try:
        yield
    finally:
        if folder is not None:
            with suppress(OSError):  # not empty: the run's files stay
                folder.rmdir()
                folder.parent.rmdir()  # runs/ too, when this run made it and no other is there


def _header(config: TrainConfig, data: ImageData, device: str) -> str:
    return (
        f"training {config.model} on {data.source}: {len(data.train)} train / {len(data.val)} val "
        f"images, {len(data.classes)} classes, {device}"
    )


def _epoch_line(config: TrainConfig, metrics: EpochMetrics) -> str:
    return (
        f"epoch {metrics.epoch}/{config.epochs}  val top-1 {metrics.val_top1:.2%}  "
        f"val loss {metrics.val_loss:.3f}  train loss {metrics.train_loss:.3f}  "
        f"{metrics.images_per_second:.0f} img/s  {metrics.seconds:.1f} s"
    )


def _say(lines: TextIO | None, text: str) -> None:
    if lines is not None:
        print(text, file=lines, flush=True)


def _path(value: Any) -> Path | None:
    return Path(value) if value else None


def evaluate(
    weights: str | Path,
    data: str | Path | ImageData,
    *,
    image_size: int | None = None,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
) -> Evaluation:
    """Score a weights file (`TrainedRun.weights`, train's weights.pt, or export's
    NAME.weights.pt) on the val split of `data` (a folder, an archive, an Imagenette name), as
    `hpsearch evaluate`: top-1, top-5, the val loss, top-1 per class and the confusion matrix
    (`format_evaluation` of search.results.evaluation prints them as the command does). The images
    are resized to `image_size` (default: the weights' own, checked when they were trained)."""
    if image_size is not None:  # before the weights are read or an image decoded
        check_image_size_range(image_size, named("image_size"))
    check_weights_path(weights)
    if isinstance(data, (str, Path)):  # not ImageData, already loaded
        check_data_source(data)
    from search.results.evaluate import evaluate_weights

    return evaluate_weights(
        weights,
        data,
        image_size=image_size,
        cache_dir=_path(cache_dir),
        device=device,
        progress=progress,
    )
