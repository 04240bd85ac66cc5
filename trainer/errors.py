"""Errors a user can act on. The CLI prints them as one line and exits 2."""

from __future__ import annotations

from collections.abc import Collection


class TrainerError(Exception):
    """Base of the errors that describe bad input, not a bug."""


class ConfigError(TrainerError, ValueError):
    """A training setting is missing, unknown or out of range; `setting` names the one setting
    at fault where there is one, so a caller can say where it came from (a flag, a file)."""

    def __init__(self, message: str, setting: str | None = None):
        super().__init__(message)
        self.setting = setting


class ForeignCheckpoint(ConfigError):
    """A checkpoint or weights file records another owner (study, trial) than the run reading it."""


def os_error_in_chain(error: BaseException | None, errnos: Collection[int]) -> OSError | None:
    """The first OSError of one of `errnos` among `error`, its cause and its context, wherever a
    wrapper (torch's zip writer, a RuntimeError) put it; None when there is none."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in errnos:
            return error
        error = error.__cause__ or error.__context__
    return None


class NoSpaceLeft(TrainerError):
    """A checkpoint or weights file could not be written for lack of disk space, of quota, or on a
    read-only file system: the disk's fault, not the run's."""


class DataError(TrainerError):
    """The data folder is missing, malformed or holds unreadable images."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the run diverged."""

    def __init__(self, epoch: int, step: int):
        self.epoch = epoch
        self.step = step
        super().__init__(
            f"training loss became non-finite in epoch {epoch} by step {step} "
            "(the run diverged: lower the learning rate)"
        )


class TrainingStopped(Exception):
    """The run was asked to stop (a signal) before it finished; its last checkpoint stands."""

    def __init__(self, epoch: int):
        self.epoch = epoch
        super().__init__(f"training stopped on request during epoch {epoch}")


class GroupOutOfMemory(TrainingStopped):
    """The trials fused in one network (trainer.fused) ran out of device memory together: no fault
    of any one of them, as each may fit alone, so each stops as on a signal (its last finished epoch
    stands) to resume in a smaller group. `trials`: how many were fused."""

    def __init__(self, epoch: int, trials: int):
        super().__init__(epoch)
        self.trials = trials
        self.args = (f"out of device memory with {trials} trials fused in one network",)


class PauseAfterEpoch(Exception):
    """Raised from `on_epoch` to end the run after that epoch with its checkpoint written, so a
    later run resumes exactly there (a search pauses a trial at a rung this way)."""

    def __init__(self, epoch: int, reason: str = ""):
        self.epoch = epoch
        super().__init__(reason or f"paused after epoch {epoch}")
