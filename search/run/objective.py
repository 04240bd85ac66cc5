"""The objective: one trial is one training run that reports val top-1 every epoch.

Pruning is Optuna's three lines (report, should_prune, raise); the trainer never sees `trial`.
Under the asha pruner a trial pauses at a rung instead: PauseAfterEpoch keeps its checkpoint.
A retried trial resumes from its first attempt's checkpoint and re-reports the restored epochs.
A promoted trial whose checkpoint is lost retrains its paused epochs, and says so.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from search import attrs
from search.run.trial_files import owner
from search.run.version import code_version
from search.study.optuna_compat import lagging_reads
from search.study.promotion import pauses
from search.study.retries import first_attempt
from search.study.space import suggest
from search.study.storage import set_user_attrs
from search.study.trial_notes import note_on_resume
from search.studyfile import StudyConfig
from trainer import NonFiniteLossError, PauseAfterEpoch
from trainer.checkpoint import CheckpointPolicy
from trainer.data import ImageData
from trainer.epoch import EpochMetrics, Steps
from trainer.errors import ForeignCheckpoint, NoSpaceLeft
from trainer.files import CHECKPOINT_NAME, WEIGHTS_NAME
from trainer.loop import run_alone, training

# The median pruner compares a trial with those that finished; what it read this long ago serves it
# again, where a read at every epoch of every worker would ask the database for every running trial.
# Not asha's: it ranks a trial with every trial at its rung, and a fused group's trials report
# theirs one after another in the same instant (with a read from before them, each ranked alone).
PRUNER_READ_LAG_SECONDS = 5.0
# Failures that end a trial, not its worker: the trial is FAIL with the reason and is not retried,
# the worker goes on. Its hyperparameters (divergence, out of memory) or a checkpoint in its folder
# that is not its. A full disk (NoSpaceLeft) is no fault of the trial: its worker stops
# (search.run.worker).
TRIAL_FAILURES = (NonFiniteLossError, torch.cuda.OutOfMemoryError, ForeignCheckpoint)
logger = logging.getLogger("hpsearch.worker")  # a line of the worker's log (search.run.log)


@dataclass(frozen=True)
class TrialRun:
    """Where a trial keeps its checkpoints and whether it continues an earlier attempt."""

    folder: Path
    resume: bool
    # Epochs its checkpoint must restore: a promotion's paused epochs, since a paused trial always
    # wrote its checkpoint. A retry's may hold none (cut short before its first), so 0.
    restores: int = 0


class Objective:
    """Returns the best val top-1 (0..1) over the run's epochs, as the study's value."""

    def __init__(
        self,
        config: StudyConfig,
        data: ImageData,
        device: torch.device,
        stop: threading.Event | None = None,
        *,
        compile: bool = False,
    ):
        self.config = config
        self.compile = compile
        self.data = data
        self.device = device
        self.stop = stop

    def __call__(self, trial: optuna.Trial, run: TrialRun | None = None) -> float:
        try:
            return run_alone(self.steps(trial, run), stop=self.stop)
        finally:  # the run is over: nothing of it is held but by an error's traceback
            free_device_memory(self.device)

    def steps(self, trial: optuna.Trial, run: TrialRun | None = None) -> Steps[float]:
        """The trial as a coroutine of its epochs (trainer.loop.training): a worker with several
        slots trains its epochs beside other trials' (search.run.slots)."""
        # Seeded by the first attempt, so a retry continues the very run its checkpoint came from.
        train_config = suggest(trial, self.config).replace(
            seed=self.config.study.seed + first_attempt(trial)
        )
        trial.set_user_attr(attrs.CONFIG, train_config.to_dict())
        history: list[EpochMetrics] = []
        restored_epochs = 0  # the first epochs of `history`, trained by the attempt before

        def resumed(restored: list[EpochMetrics]) -> None:
            nonlocal restored_epochs
            restored_epochs = len(restored)
            history.extend(restored)
            if restored:
                trial.set_user_attr(attrs.RESUMED_FROM_EPOCH, len(restored))
            for metrics in restored:  # the earlier attempt's epochs belong to this trial's curve
                trial.report(metrics.val_top1, metrics.epoch)
            if run is not None and len(restored) < run.restores:
                _checkpoint_lost(trial, run, len(restored))
            elif run is not None and run.resume and not restored:
                _retry_finds_no_checkpoint(trial, run)
            note_on_resume(trial.study, trial)  # what it continues, on its dashboard page

        def report(epoch: int, metrics: EpochMetrics) -> None:
            history.append(metrics)
            if run is not None and epoch <= run.restores:
                # A lost checkpoint's epoch, trained again: the promotion already ranked it
                trial.report(metrics.val_top1, epoch)
            else:
                report_epoch(trial, epoch, metrics.val_top1, last=train_config.epochs)

        policy = self._policy(run, trial)
        try:
            result = yield from training(
                train_config,
                self.data,
                report,
                device=self.device,
                on_resume=resumed,
                checkpoints=policy,
                resume=bool(run and run.resume),
                stop=self.stop,
                compile=self.compile,
            )
        except (*TRIAL_FAILURES, NoSpaceLeft) as error:
            trial.set_user_attr(attrs.FAIL_REASON, f"{type(error).__name__}: {error}")
            raise
        finally:
            _record(
                trial,
                history,
                restored_epochs,
                self.device,
                compiled=self.compile and not _all_fused(history[restored_epochs:]),
                checkpoint_seconds=policy.writing_seconds if policy else None,
            )
        if result.weights_not_saved is not None:
            # The value is the result: the trial completes, its weights missing (said by export)
            trial.set_user_attr(attrs.WEIGHTS_NOT_SAVED, result.weights_not_saved)
        elif run is not None:
            trial.set_user_attr(attrs.WEIGHTS, str(run.folder / WEIGHTS_NAME))
        return result.best.val_top1

    def _policy(self, run: TrialRun | None, trial: optuna.Trial) -> CheckpointPolicy | None:
        if run is None:
            return None
        settings = self.config.checkpoint
        # No checkpoint after the last epoch: the final weights are saved and the trial told at
        # once, and a ResNet-18 checkpoint with optimizer state is 130-170 MB that release() would
        # delete.
        return CheckpointPolicy(
            run.folder,
            every_epochs=settings.every_epochs,
            every_seconds=settings.every_seconds,
            at_end=False,
            # The trial's parameters are known now: its files record them with its study and number
            owner=owner(trial.study, trial),
        )


def _checkpoint_lost(trial: optuna.Trial, run: TrialRun, restored: int) -> None:
    """A promoted trial whose checkpoint is gone (removed, or on a disk this worker cannot see) or
    could not be read: it retrains the epochs it should have restored, said on the trial and in
    the log.

    Retrained rather than closed: the promotion was earned by the scores the study holds, not by
    the file; retraining costs the paused epochs only (at most 1/reduction_factor of the trial's),
    which count against the epoch budget as trained (no resumed_from_epoch covers them); and a
    checkpoint folder that not every worker shares would otherwise close every promotion another
    machine claims. Its curve is its own run, epochs 1..N each reported once by it; the paused
    trial's scores stay on the paused trial.
    """
    lost = (
        f"trial {trial.number}, the promotion of trial {trial.user_attrs[attrs.PROMOTION_OF]} "
        f"paused at epoch {run.restores}, found {restored} epoch(s) to resume in "
        f"{run.folder / CHECKPOINT_NAME} (removed, unreadable, or on a disk this worker does not "
        f"see): it retrains from epoch {restored + 1}"
    )
    trial.set_user_attr(attrs.CHECKPOINT_LOST, lost)
    logger.warning(lost)


def _retry_finds_no_checkpoint(trial: optuna.Trial, run: TrialRun) -> None:
    """A retry that trains from epoch 1 though the attempt it continues trained epochs: said, as a
    checkpoint folder given otherwise than the first attempt's (`--checkpoint-dir`), or one not
    shared by the machines, retrains silently what its stop line said would resume."""
    retried = trial.user_attrs.get(attrs.RETRY_OF)
    if not isinstance(retried, int) or retried < 0:  # read back from the storage: checked
        return
    trials = trial.study.get_trials(deepcopy=False)  # in order of number, from 0
    reached = max(trials[retried].intermediate_values, default=0) if retried < len(trials) else 0
    if reached:
        logger.warning(
            f"trial {trial.number}, continuing trial {retried} which reached epoch {reached}, "
            f"finds no checkpoint in {run.folder / CHECKPOINT_NAME} (none written yet, removed, "
            "unreadable, or on a disk this worker does not see): it trains from epoch 1"
        )


def report_epoch(trial: optuna.Trial, epoch: int, val_top1: float, *, last: int) -> None:
    """Report the epoch's val top-1; before the `last` epoch, raise TrialPruned when the pruner
    says stop, or PauseAfterEpoch when it is asha's and says wait at this rung. After the last,
    stopping saves nothing: a trial trained to its end is COMPLETE, and a PRUNED label would drop
    it from the report's figures of what its factors did and from the sampler's finished trials."""
    trial.report(val_top1, epoch)
    if epoch >= last:
        return
    asha = pauses(trial.study.pruner)
    with lagging_reads(trial.study, 0.0 if asha else PRUNER_READ_LAG_SECONDS):
        prune = trial.should_prune()
    if not prune:
        return
    if asha:  # stop at the rung, checkpoint kept
        raise PauseAfterEpoch(epoch, f"paused at epoch {epoch} at val top-1 {val_top1:.2%}")
    raise optuna.TrialPruned(f"pruned after epoch {epoch} at val top-1 {val_top1:.2%}")


def _record(
    trial: optuna.Trial,
    history: list[EpochMetrics],
    restored_epochs: int,
    device: torch.device,
    *,
    compiled: bool = False,
    checkpoint_seconds: float | None = None,
) -> None:
    """What the trial did, in one write: its time and speed those of the epochs it trained, not
    of those it restored (the attempt before recorded them, and a report sums every trial's)."""
    record: dict[str, Any] = {
        attrs.EPOCHS_RUN: len(history),
        attrs.DEVICE: _device_name(device),
        attrs.COMPILED: compiled,
        attrs.CODE_VERSION: code_version(),
    }
    # Writing checkpoints and weights: the interval's cost, under 5% is the aim
    if checkpoint_seconds is not None:
        record[attrs.CHECKPOINT_SECONDS] = round(checkpoint_seconds, 3)
    if history:
        best = max(history, key=lambda metrics: metrics.val_top1)
        record[attrs.BEST_EPOCH] = best.epoch
        record[attrs.HISTORY] = [asdict(metrics) for metrics in history]
        trained = history[restored_epochs:]
        record[attrs.SECONDS] = round(sum(metrics.seconds for metrics in trained), 3)
        if trained:
            record[attrs.IMAGES_PER_SECOND] = round(
                sum(metrics.images_per_second for metrics in trained) / len(trained), 1
            )
    set_user_attrs(trial, record)


def _all_fused(trained: list[EpochMetrics]) -> bool:
    """Whether every epoch the trial trained ran in a fused group (search.run.slots), whose grouped
    network is never compiled: a trial asked to compile then trained through no compiled graph."""
    return bool(trained) and all(metrics.fused_trials > 1 for metrics in trained)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def free_device_memory(device: torch.device) -> None:
    """Drop the finished trial's tensors so the next
    trial in this long-lived worker starts clean."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """What exists as a worker starts its trials (the study's cache of finished trials, the data)
    lives as long as the worker: frozen (gc.freeze), the garbage collection after each trial need
    not walk it (at 5,000 trials, 0.5 s a trial). Thawed as the worker ends, however it ends: a
    notebook runs search after search in one process, and what stayed frozen (each search's
    study, its storage's connections, its data) was never freed, memory and open files growing
    call after call. Where the caller froze objects of its own, nothing is frozen: the one
    unfreeze there is would thaw those too."""
    if gc.get_freeze_count():
        yield
        return
    gc.collect()  # what is garbage already, freed now: frozen, it would be kept until thawed
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
