"""One epoch of one run on its own network: `train_one_epoch`, `evaluate`, the step's precision,
and `run_epoch`, which trains and evaluates the epoch a run asks for (`EpochWork`; trainer.loop
yields them, trainer.rounds trains a round of them, fusing what it can)."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from trainer.augment import Batch, eval_batches, steps_per_epoch, train_batches
from trainer.checkpoint import global_random_state, set_global_random_state
from trainer.config import TrainConfig
from trainer.data import ImageData
from trainer.errors import NonFiniteLossError, TrainingStopped
from trainer.timing import Mark

LOSS_CHECK_EVERY = 50  # steps between the host-device synchronisations that look for a NaN loss
EVAL_BATCH_SIZE = {
    "cuda": 1024,
    "mps": 512,
    "cpu": 256,
}  # evaluation keeps no activations for backward


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # counted from 1
    val_top1: float  # fraction of validation images whose top class is right, 0..1
    val_loss: float
    train_loss: float  # mean over the epoch's steps
    images_per_second: float  # training images only, evaluation excluded
    seconds: float  # the whole epoch, evaluation included
    lr: float  # at the end of the epoch
    fused_trials: int = 1  # trials trained in one network that epoch (trainer/fused.py), itself too


@dataclass
class Training:
    """The mutable parts of a run, kept together so they are saved and restored together."""

    model: torch.nn.Module  # owns the weights: saved, restored and stepped
    network: torch.nn.Module  # runs the forward pass: `model` itself, or its compiled graph
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # draws every shuffle and crop, so resuming replays the same batches
    device: torch.device
    # The global random state as the run left it (checkpoint.global_random_state): what its
    # dropout draws from, put in place for each of its epochs (own_random_state)
    random_state: dict[str, Any]


@dataclass(frozen=True)
class EpochWork:
    """One epoch a run asks to be trained and evaluated: what trainer.loop's `training` yields, and
    what its driver (`run_alone`, or trainer.rounds for several runs at once) answers with the
    epoch's metrics."""

    run: Training
    config: TrainConfig
    data: ImageData  # on the run's device
    epoch: int  # counted from 1

    def train_batches(self) -> Iterator[Batch]:
        """The epoch's training batches, shuffled and cropped by the run's own generator."""
        config = self.config
        return train_batches(
            self.data.train,
            batch_size=config.batch_size,
            image_size=config.image_size,
            min_scale=config.min_scale,
            generator=self.run.generator,
        )


Result = TypeVar("Result")
# A run as a coroutine: it yields each epoch's work, is sent the epoch's metrics (or thrown its
# error) and returns its Result; a search's trial, which wraps one, is one too
Steps = Generator[EpochWork, EpochMetrics, Result]


def run_epoch(
    work: EpochWork, stop: threading.Event | None = None, *, progress: bool = False
) -> EpochMetrics:
    """Train and evaluate one run's epoch on its own network."""
    with own_random_state(work.run):
        return _run_epoch(work, stop, progress)


@contextmanager
def own_random_state(run: Training) -> Iterator[None]:
    """The global random state as `run` left it, for the length of the block. Runs that take turns
    in one process (a worker's slots, trainer.rounds) would otherwise draw their dropout from one
    stream, and each new run's seed would reset it for all: each trains as it would alone.
    (A fused group needs none: only ResNets fuse, which draw nothing from it.)"""
    others = global_random_state(run.device)
    set_global_random_state(run.random_state)
    try:
        yield
    finally:
        run.random_state = global_random_state(run.device)
        set_global_random_state(others)


def _run_epoch(work: EpochWork, stop: threading.Event | None, progress: bool) -> EpochMetrics:
    run, config, data, epoch = work.run, work.config, work.data, work.epoch
    started = Mark(run.device)
    batches = until_stopped(work.train_batches(), stop, epoch)
    steps = steps_per_epoch(len(data.train), config.batch_size)
    bar = tqdm(
        batches,
        total=steps,
        desc=f"epoch {epoch}/{config.epochs}",
        unit="batch",
        disable=not progress,
        leave=False,
    )
    train_loss = train_one_epoch(
        run.network,
        bar,
        run.optimizer,
        run.scheduler,
        epoch=epoch,
        label_smoothing=config.label_smoothing,
        progress_bar=bar,
    )
    trained = Mark(run.device)  # read after evaluation, which waits for the GPU anyway
    val_top1, val_loss = evaluate(
        run.network,
        until_stopped(
            eval_batches(
                data.val, batch_size=EVAL_BATCH_SIZE[run.device.type], image_size=config.image_size
            ),
            stop,
            epoch,
        ),
    )
    return epoch_metrics(work, train_loss, val_top1, val_loss, started, trained)


def epoch_metrics(
    work: EpochWork,
    train_loss: float,
    val_top1: float,
    val_loss: float,
    started: Mark,
    trained: Mark,
    fused_trials: int = 1,
) -> EpochMetrics:
    """The metrics of an epoch trained from `started` to `trained` and evaluated since; a fused
    trial's images per second are its own, so the group trained `fused_trials` times as many."""
    steps = steps_per_epoch(len(work.data.train), work.config.batch_size)
    trained_images = min(steps * work.config.batch_size, len(work.data.train))
    return EpochMetrics(
        epoch=work.epoch,
        val_top1=val_top1,
        val_loss=val_loss,
        train_loss=train_loss,
        images_per_second=trained_images / started.seconds_until(trained),
        seconds=started.seconds_until(Mark(work.run.device)),
        lr=float(work.run.scheduler.get_last_lr()[0]),  # a Tensor where the lr was given as one
        fused_trials=fused_trials,
    )


def until_stopped(batches: Iterable, stop: threading.Event | None, epoch: int) -> Iterable:
    """Yield `batches`, raising TrainingStopped at the first batch after `stop` is set."""
    for batch in batches:
        if stop is not None and stop.is_set():
            raise TrainingStopped(epoch)
        yield batch


def train_one_epoch(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    epoch: int,
    label_smoothing: float = 0.0,
    progress_bar: tqdm | None = None,
) -> float:
    """One pass over `batches`; returns the mean training loss. Raises NonFiniteLossError."""
    model.train()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    step = 0
    for step, (images, labels) in enumerate(batches, start=1):
        with mixed_precision(device):
            loss = F.cross_entropy(
                model(as_model_input(images)), labels, label_smoothing=label_smoothing
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        # Summed on the device: reading the loss every step would stall the GPU each time.
        loss_sum += loss.detach().float()
        if step % LOSS_CHECK_EVERY == 0:
            _check_finite(loss_sum, epoch, step, progress_bar)
    return _check_finite(loss_sum, epoch, step, progress_bar) / max(step, 1)


def _check_finite(
    loss_sum: torch.Tensor, epoch: int, step: int, progress_bar: tqdm | None
) -> float:
    """The loss summed so far, read on the host (the one wait for the GPU); raises if not finite."""
    total = loss_sum.item()
    if total != total or total in (float("inf"), float("-inf")):
        raise NonFiniteLossError(epoch, step)
    if progress_bar is not None and step:
        progress_bar.set_postfix(loss=f"{total / step:.3f}")
    return total


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[float, float]:
    """Top-1 accuracy (0..1) and mean cross-entropy over `batches`."""
    model.eval()
    device = next(model.parameters()).device
    correct = torch.zeros((), device=device, dtype=torch.long)
    loss_sum = torch.zeros((), device=device)
    count = 0
    for images, labels in batches:
        with mixed_precision(device):
            logits = model(as_model_input(images))
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        correct += (logits.argmax(dim=1) == labels).sum()
        count += len(labels)
    return correct.item() / max(count, 1), loss_sum.item() / max(count, 1)


def mixed_precision(device: torch.device) -> torch.autocast:
    """bf16 autocast on a GPU; fp32 elsewhere."""
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
    )


def as_model_input(images: torch.Tensor) -> torch.Tensor:
    if images.device.type == "cuda":
        return images.contiguous(memory_format=torch.channels_last)
    return images
