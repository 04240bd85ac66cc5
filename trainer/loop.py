"""One training run: `train`, and `training`, the run as a coroutine of its epochs (each trained by
trainer.epoch), that ties them to resuming, reporting and checkpoints."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch

from trainer import checkpoint
from trainer.augment import steps_per_epoch
from trainer.checkpoint import CheckpointPolicy
from trainer.config import TrainConfig
from trainer.data import ImageData
from trainer.device import resolve_device
from trainer.epoch import EpochMetrics, EpochWork, Result, Steps, Training, run_epoch
from trainer.errors import (
    ConfigError,
    ForeignCheckpoint,
    NoSpaceLeft,
    PauseAfterEpoch,
    TrainingStopped,
)
from trainer.model import DEFAULT_MODEL, build_model
from trainer.optim import build_optimizer, build_scheduler
from trainer.weights import WEIGHTS_NAME, class_names, weights_payload


@dataclass(frozen=True)
class TrainResult:
    config: TrainConfig
    history: tuple[EpochMetrics, ...]
    device: str
    resumed_from_epoch: int | None = None  # the checkpoint's epoch when the run was resumed
    # Why the final weights file could not be written (a full disk); None once written, or when
    # the run writes no files
    weights_not_saved: str | None = None

    @property
    def best(self) -> EpochMetrics:
        return max(self.history, key=lambda metrics: metrics.val_top1)

    @property
    def seconds(self) -> float:
        return sum(metrics.seconds for metrics in self.history)

    @property
    def images_per_second(self) -> float:
        return sum(metrics.images_per_second for metrics in self.history) / len(self.history)

    def summary(self) -> dict:
        return {
            "best_val_top1": self.best.val_top1,
            "best_epoch": self.best.epoch,
            "final_val_top1": self.history[-1].val_top1,
            "epochs": len(self.history),
            "seconds": self.seconds,
            "images_per_second": self.images_per_second,
            "device": self.device,
            "resumed_from_epoch": self.resumed_from_epoch,
            "config": self.config.to_dict(),
            "history": [asdict(metrics) for metrics in self.history],
        }


def train(
    config: TrainConfig,
    data: ImageData,
    on_epoch: Callable[[int, EpochMetrics], None] | None = None,
    *,
    device: str | torch.device = "auto",
    checkpoints: CheckpointPolicy | None = None,
    resume: bool = False,
    progress: bool = False,
    on_resume: Callable[[list[EpochMetrics]], None] | None = None,
    stop: threading.Event | None = None,
    compile: bool = False,
) -> TrainResult:
    """Train `config.model` on `data`; after each epoch call `on_epoch(epoch, metrics)`.

    Each epoch is reported before its checkpoint is written, so a checkpoint that cannot be
    written never loses the epoch's score (it raises NoSpaceLeft on a full disk, with the epoch
    reported); a final weights file that cannot be written for lack of space leaves the result
    whole, saying why in `weights_not_saved`. Raising from `on_epoch` stops the run (that is how a
    pruner stops a trial), with no checkpoint of that epoch; PauseAfterEpoch stops it with that
    epoch's checkpoint written, so a later run resumes there. A resumed run first hands the
    restored epochs to `on_resume`, none where the checkpoint is missing; a checkpoint that cannot
    be read is set aside and the run starts over. Setting `stop` ends the run within a step with
    TrainingStopped, after writing the last finished epoch if the checkpoint on disk is older, so
    a stopped run retrains at most the epoch it was in. `compile` runs the network through
    torch.compile; later runs in the same process reuse the first one's compiled graphs.
    """
    steps = training(
        config,
        data,
        on_epoch,
        device=device,
        checkpoints=checkpoints,
        resume=resume,
        on_resume=on_resume,
        stop=stop,
        compile=compile,
    )
    return run_alone(steps, stop=stop, progress=progress)


def training(
    config: TrainConfig,
    data: ImageData,
    on_epoch: Callable[[int, EpochMetrics], None] | None = None,
    *,
    device: str | torch.device = "auto",
    checkpoints: CheckpointPolicy | None = None,
    resume: bool = False,
    on_resume: Callable[[list[EpochMetrics]], None] | None = None,
    stop: threading.Event | None = None,
    compile: bool = False,
) -> Steps[TrainResult]:
    """`train` as a coroutine that leaves each epoch's training and evaluation to its driver: it
    yields an EpochWork and is sent the epoch's metrics, or thrown the epoch's error
    (TrainingStopped, NonFiniteLossError). Everything else (resuming, reporting, pausing,
    checkpoints, the weights file) happens here, so a run driven alone (`run_alone`) and one
    driven in a fused group (trainer.rounds) write the same files."""
    device = resolve_device(device)
    data = data.to(device)
    run = start_training(config, len(data.classes), len(data.train), device, compile)
    history: list[EpochMetrics] = []
    if resume and checkpoints is not None:
        history = _restore(run, config, data, checkpoints) if checkpoints.path.exists() else []
        if on_resume is not None:  # none restored too: a caller may have counted on some
            on_resume(list(history))
    resumed_from = len(history) or None
    unsaved = None  # the last finished epoch, copied to the host, while the checkpoint is older
    for epoch in range(len(history) + 1, config.epochs + 1):
        try:
            metrics = yield EpochWork(run, config, data, epoch)
        except TrainingStopped:
            if checkpoints is not None and unsaved is not None:
                checkpoints.write(unsaved, checkpoints.path)
            raise
        history.append(metrics)
        if on_epoch is not None:
            try:
                on_epoch(epoch, metrics)
            except PauseAfterEpoch:
                if checkpoints is not None:
                    checkpoints.write(
                        _payload(run, config, data, history, checkpoints), checkpoints.path
                    )
                raise
        if checkpoints is None:
            continue
        if checkpoints.is_due(epoch, last=epoch == config.epochs):
            checkpoints.write(_payload(run, config, data, history, checkpoints), checkpoints.path)
            unsaved = None
        elif stop is not None and epoch < config.epochs:
            unsaved = _on_host(_payload(run, config, data, history, checkpoints))
    weights_not_saved = None
    if checkpoints is not None:
        try:
            checkpoints.write(
                weights_payload(run.model, config, data.classes, checkpoints.owner),
                checkpoints.folder / WEIGHTS_NAME,
            )
        except NoSpaceLeft as error:  # the run's scores stand: the caller says what is missing
            weights_not_saved = str(error)
    return TrainResult(config, tuple(history), str(device), resumed_from, weights_not_saved)


def run_alone(
    steps: Steps[Result],
    *,
    stop: threading.Event | None = None,
    progress: bool = False,
) -> Result:
    """Drive a run (or anything that yields a run's epochs, as a search's trial does) to its end,
    training each epoch on its own network; an epoch's error is thrown into the run, where its
    handlers see it as they would a call's."""
    try:
        work = next(steps)
        while True:
            try:
                metrics = run_epoch(work, stop, progress=progress)
            except BaseException as error:  # noqa: BLE001 - the run's handlers decide, as for a call
                work = steps.throw(error)
            else:
                work = steps.send(metrics)
    except StopIteration as done:
        return done.value


def start_training(
    config: TrainConfig, num_classes: int, num_train: int, device: torch.device, compile: bool
) -> Training:
    """A new run's model, optimizer, schedule and batch generator, all drawn from `config.seed`:
    the same config starts the same run, alone or fused with others (trainer/fused.py)."""
    torch.manual_seed(config.seed)
    model = build_model(num_classes, device, config.model)
    # A worker compiles on its first trial only: Dynamo inlines nn.Modules (torch >= 2.5), so its
    # cached graphs serve every later network of the same model and shape in this process
    # (tests/test_train.py).
    # torch.compile of a Module returns an OptimizedModule, a Module wrapping it; its signature
    # says only Callable.
    network = cast(torch.nn.Module, torch.compile(model)) if compile else model
    optimizer = build_optimizer(config, model.parameters())
    scheduler = build_scheduler(config, optimizer, steps_per_epoch(num_train, config.batch_size))
    generator = torch.Generator(device=device).manual_seed(config.seed)
    # Where the global random state is now, this run's dropout draws from, whatever other runs
    # in this process draw or seed later (trainer.epoch.own_random_state)
    random_state = checkpoint.global_random_state(device)
    return Training(model, network, optimizer, scheduler, generator, device, random_state)


def _payload(
    run: Training,
    config: TrainConfig,
    data: ImageData,
    history: list[EpochMetrics],
    policy: CheckpointPolicy,
) -> dict[str, Any]:
    return {
        "epoch": len(history),
        "config": config.to_dict(),
        "classes": list(data.classes),  # what the network's outputs mean; resuming checks them
        "train_images": len(data.train),  # what the schedule's steps count; resuming checks it
        "owner": policy.owner,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": checkpoint.rng_states(run.generator, run.random_state),
        "history": [asdict(metrics) for metrics in history],
    }


def _on_host(value: Any) -> Any:
    """A copy of a checkpoint payload that later steps cannot change: state dicts hold the
    live tensors. 130-170 MB for ResNet-18 with its optimizer's state, once an epoch: tens of
    milliseconds on a GPU, against seconds for writing it."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _on_host(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_host(item) for item in value)
    return value


def _restore(
    run: Training, config: TrainConfig, data: ImageData, policy: CheckpointPolicy
) -> list[EpochMetrics]:
    state = checkpoint.load_or_set_aside(policy.path)
    if state is None:
        return []
    refuse_a_foreign_file(state, policy.path)
    if policy.owner is not None and state.get("owner") != policy.owner:
        raise ForeignCheckpoint(
            f"cannot resume from {policy.path}: it records {state.get('owner') or 'no owner'}, "
            f"not {policy.owner}"
        )
    refuse_other_settings(state, config, policy.path)
    refuse_other_classes(state.get("classes"), data.classes, policy.path)
    _refuse_another_training_set_size(state.get("train_images"), len(data.train), policy.path)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.random_state = checkpoint.restore_rng_states(state["rng"], run.generator, policy.path)
    return [EpochMetrics(**metrics) for metrics in state["history"]]


def _refuse_another_training_set_size(recorded: Any, images: int, path: Path) -> None:
    """The learning-rate schedule counts the steps of the whole run from the training images: on
    fewer images, the resumed epochs trained at the schedule's end (lr 0), on more, they stopped
    partway down it. Older checkpoints record no count (`recorded` None)."""
    if isinstance(recorded, int) and recorded != images:
        raise ConfigError(
            f"cannot resume from {path}: it was trained on {recorded} training images, but the "
            f"data holds {images} now, and its learning-rate schedule counts steps by them; "
            "use the same data or another checkpoint folder"
        )


def resumable_classes(config: TrainConfig, policy: CheckpointPolicy) -> tuple[str, ...] | None:
    """Refuse, before any data is decoded, to resume from a checkpoint of other settings; return
    the classes it was trained on, for the caller to check against the data's listing (None: no
    checkpoint, one written before checkpoints recorded their classes, or one that cannot be read,
    which training sets aside)."""
    if not policy.path.is_file():
        return None
    try:
        state = checkpoint.load(policy.path)
    except Exception:  # noqa: BLE001 - as load_or_set_aside: any failure is "cannot be read"
        return None
    refuse_a_foreign_file(state, policy.path)
    refuse_other_settings(state, config, policy.path)
    return tuple(state["classes"]) if "classes" in state else None


# What every checkpoint `training` wrote holds, and resuming reads
CHECKPOINT_KEYS = ("config", "model", "optimizer", "scheduler", "rng", "history")


def refuse_a_foreign_file(state: Any, path: Path) -> None:
    """A file that torch reads but that is no checkpoint of ours: last.pt is a common name (other
    trainers write one), or a weights.pt copied in its place. Refused naming what it lacks, rather
    than a KeyError after the data is decoded and the weights loaded; left where it is, as
    another tool's file."""
    missing = (
        [key for key in CHECKPOINT_KEYS if key not in state]
        if isinstance(state, dict)
        else list(CHECKPOINT_KEYS)
    )
    if missing:
        raise ConfigError(
            f"cannot resume from {path}: it is not a training checkpoint of hpsearch (it has no "
            f"{', '.join(missing)}); use another checkpoint folder, or move the file away"
        )


def refuse_other_settings(state: dict[str, Any], config: TrainConfig, path: Path) -> None:
    # A checkpoint written before a run could name its model trained a ResNet-18
    saved_config = {"model": DEFAULT_MODEL, **state["config"]}
    changed = [
        f"{key}={saved_config.get(key)!r}, not {value!r}"
        for key, value in config.to_dict().items()
        if saved_config.get(key) != value
    ]
    if changed:
        raise ConfigError(
            f"cannot resume from {path}: it was trained with other settings "
            f"({'; '.join(changed)}); use the same settings or another checkpoint folder"
        )


def refuse_other_classes(
    recorded: list[str] | tuple[str, ...] | None, classes: tuple[str, ...], path: Path
) -> None:
    """A network's outputs are its classes: resumed on a data set of others, it would fail to load
    (another count) or silently mean other things (other names). Older checkpoints record none
    (`recorded` None): loading their weights is then the only check."""
    if recorded is not None and tuple(recorded) != classes:
        raise ConfigError(
            f"cannot resume from {path}: it was trained on {len(recorded)} classes "
            f"({class_names(tuple(recorded))}), but the data holds {len(classes)} classes "
            f"({class_names(classes)}); use the same data or another checkpoint folder"
        )
