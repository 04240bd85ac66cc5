"""Optimizers by name and learning-rate schedules, both built from a TrainConfig."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from trainer.config import TrainConfig
from trainer.ranger import Ranger

# Defaults used when a config leaves eps or momentum unset: each optimizer's own.
DEFAULT_EPS = {"adam": 1e-8, "adamw": 1e-8, "radam": 1e-8, "nadam": 1e-8, "ranger": 1e-5}
FLAT_FRACTION = 0.72  # flat_cosine holds the lr for this share of training (fastai's Ranger recipe)
ONECYCLE_RISE = 0.3  # onecycle climbs from lr/25 to lr over this share of training


def build_optimizer(
    config: TrainConfig, parameters: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    name, lr, decay = config.optimizer, config.lr, config.weight_decay
    if name == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=lr,
            momentum=config.momentum or 0.0,
            nesterov=config.nesterov,
            weight_decay=decay,
            foreach=True,
        )
    eps = DEFAULT_EPS[name] if config.eps is None else config.eps
    if name == "ranger":  # torch-optimizer's algorithm in foreach steps (trainer/ranger.py)
        return Ranger(parameters, lr=lr, eps=eps, weight_decay=decay)
    optimizer_class = {
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "radam": torch.optim.RAdam,
        "nadam": torch.optim.NAdam,
    }[name]
    # foreach: one kernel per step for all tensors; PyTorch picks it on a GPU but not on a CPU,
    # where the per-tensor loop made RAdam's step twice as slow (benchmarks/RESULTS.md).
    return optimizer_class(parameters, lr=lr, eps=eps, weight_decay=decay, foreach=True)


def lr_factor(schedule: str, progress: float) -> float:
    """The lr multiplier at `progress` in [0, 1] of the training after warm-up."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return _cosine(progress)
    if schedule == "flat_cosine":
        return (
            1.0
            if progress < FLAT_FRACTION
            else _cosine((progress - FLAT_FRACTION) / (1 - FLAT_FRACTION))
        )
    if schedule == "onecycle":
        if progress < ONECYCLE_RISE:
            return 1 / 25 + (1 - 1 / 25) * (1 - _cosine(progress / ONECYCLE_RISE))
        return _cosine((progress - ONECYCLE_RISE) / (1 - ONECYCLE_RISE))
    raise ValueError(f"unknown schedule {schedule!r}")


def _cosine(progress: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def build_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> LambdaLR:
    """A per-step schedule: linear warm-up, then `config.schedule` over the remaining steps."""
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    return LambdaLR(optimizer, _step_factor(config.schedule, total_steps, warmup_steps))


def _step_factor(schedule: str, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return lr_factor(schedule, (step - warmup_steps) / max(1, total_steps - warmup_steps))

    return factor
