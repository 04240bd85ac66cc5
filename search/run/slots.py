"""A worker's slots: the trials it trains at once, `--trials-per-worker` of them.

Each trial in flight is a coroutine (the worker's `run_steps`) that yields its epochs. A round
trains one epoch of every trial in flight, those that fuse in one network (trainer.fused), and
sends each trial its metrics or throws it its error, where the trial's own handlers (pruning,
pausing, failing, telling the study) run as they do for a trial trained alone. A trial that ends
frees its slot at the round's end, an epoch boundary, and the worker fills it with its next trial.
One slot is a trial at a time, as a worker always ran them. A fused group that runs out of device
memory halves the slots (`_fit_device_memory`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from trainer import TrainingStopped
from trainer.epoch import EpochMetrics, EpochWork, Steps
from trainer.errors import GroupOutOfMemory
from trainer.rounds import EpochRunner

logger = logging.getLogger("hpsearch.worker")


@dataclass
class _Slot:
    steps: Steps[bool]
    work: EpochWork  # the epoch it waits for


class Slots:
    """Up to `count` trials in flight; `exhausted` once a trial said nothing is left to run.
    `free_memory` is called once trials have ended, when nothing here holds their models."""

    def __init__(
        self, count: int, stop: threading.Event, free_memory: Callable[[], None] = lambda: None
    ):
        self.count = count
        self.stop = stop
        self.exhausted = False
        self._slots: list[_Slot] = []
        self._runner = EpochRunner()
        self._free_memory = free_memory
        self._trials_ended = False

    @property
    def free(self) -> int:
        return self.count - len(self._slots)

    @property
    def busy(self) -> bool:
        return bool(self._slots)

    def start(self, steps: Steps[bool]) -> None:
        """Take a trial: run it up to its first epoch (a trial may end before, as a failed one)."""
        try:
            self._slots.append(_Slot(steps, next(steps)))
        except StopIteration as ended:
            self._ended(ended.value)
        except BaseException:  # a bug, recorded on its trial: the others stop and resume later
            self.abandon()
            raise
        self._free_if_ended()

    def run_round(self) -> None:
        """One epoch of every trial in flight. A trial that raises (a bug, re-raised once its trial
        is recorded) stops the others, each queued to resume from its checkpoint, and is raised."""
        self._round()
        # Here, not as the trial ends: till `_round` returns, its slot, its epoch's error (an out
        # of memory's traceback) and its group's network hold its model, optimizer and activations
        self._free_if_ended()

    def _round(self) -> None:
        in_flight, self._slots = self._slots, []
        try:
            outcomes = self._runner.run([slot.work for slot in in_flight], self.stop)
        except BaseException:
            self._slots = in_flight
            self.abandon()
            raise
        self._fit_device_memory(outcomes)
        raised: BaseException | None = None
        for slot, outcome in zip(in_flight, outcomes):
            try:
                if isinstance(outcome, BaseException):
                    slot.work = slot.steps.throw(outcome)
                else:
                    slot.work = slot.steps.send(outcome)
                self._slots.append(slot)
            except StopIteration as ended:
                self._ended(ended.value)
            except BaseException as error:  # noqa: BLE001 - raised below, once the others stop
                raised = raised or error
        if raised is not None:
            self.abandon()
            raise raised

    def _fit_device_memory(self, outcomes: list[EpochMetrics | BaseException]) -> None:
        """A fused group out of device memory: half as many trials at once from now on, down to
        one. Its members stop (their last epochs stand) and are queued to resume, in the smaller
        groups; with the slots left as they were, they would run out of memory again at once."""
        too_many = [outcome.trials for outcome in outcomes if isinstance(outcome, GroupOutOfMemory)]
        if not too_many or self.count == 1:
            return
        self.count = max(1, min(self.count, max(too_many)) // 2)
        logger.warning(
            "out of device memory with %d trials fused in one network: this worker trains at "
            "most %d at once from now on, and they resume from their last finished epochs "
            "(a smaller --trials-per-worker spares that)",
            max(too_many),
            self.count,
        )

    @contextmanager
    def stopped_on_error(self) -> Iterator[None]:
        """An error between rounds (finding the next trial: a storage gone past its outage, a
        bug) stops the trials in flight as one in a round does: else they stayed RUNNING, their
        heartbeats beating while the error was held (a notebook keeps it), without a checkpoint
        of their last epoch, and were failed by their garbage collection as a GeneratorExit."""
        try:
            yield
        except BaseException:
            self.abandon()
            raise

    def abandon(self) -> None:
        """Stop every trial in flight as a signal would: each writes its checkpoint and is queued
        to resume."""
        for slot in self._slots:
            try:
                slot.steps.throw(TrainingStopped(slot.work.epoch))
            except StopIteration:
                pass
            except Exception as error:  # noqa: BLE001 - stopping after an error: that one is raised
                # Its checkpoint or its queueing failed too (the storage gone past its outage):
                # it stays RUNNING until the dead-trial sweep resumes it from what it wrote
                logger.warning(
                    "a trial in flight could not be stopped cleanly (%s: %s); the dead-trial "
                    "sweep resumes it once its heartbeat is missed",
                    type(error).__name__,
                    error,
                )
        self._slots = []

    def _ended(self, more: bool) -> None:
        self.exhausted = self.exhausted or not more
        self._trials_ended = True
        # The runner keeps each group's network, which holds its members' models, for the next
        # round: a group that lost a member gets a new one anyway
        self._runner = EpochRunner()

    def _free_if_ended(self) -> None:
        if self._trials_ended:
            self._trials_ended = False
            self._free_memory()
