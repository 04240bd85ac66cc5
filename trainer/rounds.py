"""Rounds of epochs: one epoch of each run in flight (`EpochWork`s that trainer.loop's `training`
yields), those that fuse trained together in one grouped network (trainer.fused), the others
alone. A worker with several slots (search.run.slots) trains its trials round by round."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
import torchvision

from trainer.augment import eval_batches
from trainer.epoch import (
    EVAL_BATCH_SIZE,
    EpochMetrics,
    EpochWork,
    epoch_metrics,
    run_epoch,
    until_stopped,
)
from trainer.errors import GroupOutOfMemory, NonFiniteLossError, TrainingStopped
from trainer.fused import FusedNetwork, evaluate_fused, train_fused_epoch
from trainer.timing import Mark


class EpochRunner:
    """Trains a round of epochs, one per run (`EpochWork`s from `trainer.loop.training`): the runs
    that fuse (`fuse_key`) in one network per key, the others alone.

    A round answers each run with its metrics or its error: a NaN fails its own run only; a stop
    or an error of the fused network reaches every run of the group, out of device memory as
    GroupOutOfMemory (each stops, to resume in a smaller group). The network of a group is
    kept for the next round while its members stay the same.
    """

    def __init__(self) -> None:
        self._networks: dict[tuple[int, ...], FusedNetwork] = {}

    def run(
        self, works: Sequence[EpochWork], stop: threading.Event | None = None
    ) -> list[EpochMetrics | BaseException]:
        outcomes: dict[int, EpochMetrics | BaseException] = {}
        networks: dict[tuple[int, ...], FusedNetwork] = {}
        for group in _groups(works):
            members = [works[index] for index in group]
            if len(members) == 1:
                outcomes[group[0]] = _alone(members[0], stop)
                continue
            models = tuple(id(work.run.model) for work in members)
            networks[models] = self._networks.get(models) or FusedNetwork(
                [work.run.model for work in members]
            )
            outcomes.update(zip(group, _fused(networks[models], members, stop)))
        self._networks = networks  # a group that changed frees its network
        return [outcomes[index] for index in range(len(works))]


def fuse_key(work: EpochWork) -> tuple | None:
    """What runs must share to train in one network: the model, the batch and image sizes, the
    data and the device; None for a run that trains alone (a model that does not fuse)."""
    if not isinstance(work.run.model, torchvision.models.ResNet):
        return None
    config = work.config
    return (config.model, config.image_size, config.batch_size, id(work.data), work.run.device)


def _groups(works: Sequence[EpochWork]) -> list[list[int]]:
    """The indices of `works`, grouped by fuse key, in order of first appearance."""
    groups: dict[object, list[int]] = {}
    for index, work in enumerate(works):
        key = fuse_key(work)
        groups.setdefault(key if key is not None else ("alone", index), []).append(index)
    return list(groups.values())


def _alone(work: EpochWork, stop: threading.Event | None) -> EpochMetrics | BaseException:
    try:
        return run_epoch(work, stop)
    except Exception as error:  # noqa: BLE001 - the run's own handlers decide, as around a call
        return error


def _fused(
    network: FusedNetwork, works: Sequence[EpochWork], stop: threading.Event | None
) -> list[EpochMetrics | BaseException]:
    """One epoch of each run in `works`, trained and evaluated in `network`."""
    try:
        return _fused_epoch(network, works, stop)
    except TrainingStopped:
        return [TrainingStopped(work.epoch) for work in works]
    except torch.cuda.OutOfMemoryError:
        # The group's fault, not a member's: failed, each would be a FAIL its hyperparameters never
        # caused, which the sampler learns from. Each resumes in a smaller group (search.run.slots)
        return [GroupOutOfMemory(work.epoch, len(works)) for work in works]
    except Exception as error:  # noqa: BLE001 - a bug: every member's
        return [error for _ in works]


def _fused_epoch(
    network: FusedNetwork, works: Sequence[EpochWork], stop: threading.Event | None
) -> list[EpochMetrics | BaseException]:
    first = works[0]  # the group shares data, sizes and device (fuse_key)
    started = Mark(network.device)
    losses = train_fused_epoch(
        network,
        until_stopped(zip(*(work.train_batches() for work in works)), stop, first.epoch),
        [work.run.optimizer for work in works],
        [work.run.scheduler for work in works],
        epochs=[work.epoch for work in works],
        label_smoothing=[work.config.label_smoothing for work in works],
    )
    trained = Mark(network.device)
    # Each trial sees every validation image: K copies side by side, so K times fewer per batch
    batch_size = max(1, EVAL_BATCH_SIZE[network.device.type] // len(works))
    val_batches = eval_batches(
        first.data.val, batch_size=batch_size, image_size=first.config.image_size
    )
    scores = evaluate_fused(network, until_stopped(val_batches, stop, first.epoch))
    return [
        loss
        if isinstance(loss, NonFiniteLossError)
        else epoch_metrics(work, loss, val_top1, val_loss, started, trained, len(works))
        for work, loss, (val_top1, val_loss) in zip(works, losses, scores)
    ]
