"""The objective: one trial is one training run that reports val top-1 every epoch.

Pruning is Optuna's three lines (report, should_prune, raise); the trainer never sees `trial`.
"""

from __future__ import annotations

import gc
from dataclasses import asdict

import optuna
import torch

from search.config import StudyConfig
from search.space import suggest
from search.version import code_version
from trainer import EpochMetrics, ImageData, NonFiniteLossError, train

FAIL_REASON_ATTR = "fail_reason"
# Failures that belong to a trial's hyperparameters: the trial is FAIL and the worker goes on.
TRIAL_FAILURES = (NonFiniteLossError, torch.cuda.OutOfMemoryError)


class Objective:
    """Returns the best val top-1 (0..1) over the run's epochs, as the study's value."""

    def __init__(self, config: StudyConfig, data: ImageData, device: torch.device):
        self.config = config
        self.data = data
        self.device = device

    def __call__(self, trial: optuna.Trial) -> float:
        train_config = suggest(trial, self.config)
        trial.set_user_attr("config", train_config.to_dict())
        history: list[EpochMetrics] = []

        def report(epoch: int, metrics: EpochMetrics) -> None:
            history.append(metrics)
            trial.report(metrics.val_top1, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch} at val top-1 {metrics.val_top1:.2%}")

        try:
            return train(train_config, self.data, report, device=self.device).best.val_top1
        except TRIAL_FAILURES as error:
            trial.set_user_attr(FAIL_REASON_ATTR, f"{type(error).__name__}: {error}")
            raise
        finally:
            _record(trial, history, self.device)
            free_device_memory(self.device)


def _record(trial: optuna.Trial, history: list[EpochMetrics], device: torch.device) -> None:
    trial.set_user_attr("epochs_run", len(history))
    trial.set_user_attr("device", _device_name(device))
    trial.set_user_attr("code_version", code_version())
    if not history:
        return
    best = max(history, key=lambda metrics: metrics.val_top1)
    trial.set_user_attr("best_epoch", best.epoch)
    trial.set_user_attr("seconds", round(sum(metrics.seconds for metrics in history), 3))
    trial.set_user_attr("images_per_second",
                        round(sum(metrics.images_per_second for metrics in history) / len(history), 1))
    trial.set_user_attr("history", [asdict(metrics) for metrics in history])


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def free_device_memory(device: torch.device) -> None:
    """Drop the finished trial's tensors so the next trial in this long-lived worker starts clean."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
