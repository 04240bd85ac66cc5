"""Checkpoints: everything a run needs to continue exactly, written atomically.

A ResNet-18 checkpoint with optimizer state is 130-170 MB, so a policy decides how often it
is worth writing one; only the latest is kept. Final weights are saved on their own, small,
for `evaluate` and `export` (trainer.weights).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from trainer.errors import ConfigError, NoSpaceLeft, os_error_in_chain
from trainer.files import CHECKPOINT_NAME, check_checksums
from trainer.outputs import check_output_folder
from trainer.sources import one_line
from trainer.whole_files import remove_abandoned_temporaries, replace_whole

logger = logging.getLogger("trainer.checkpoint")


@dataclass
class CheckpointPolicy:
    """Where checkpoints go and when one is due: every
    N epochs and/or every S seconds of training."""

    folder: Path
    every_epochs: int | None = 1
    every_seconds: float | None = None
    # After the last epoch: True always (a finished run then resumes as finished), False never (for
    # a caller that saves the final weights and is done at once, like a search trial).
    at_end: bool = True
    # Who the files belong to (for a search: study identity, trial, parameters), recorded in each
    # checkpoint and weights file; resuming from a checkpoint that records another is refused.
    owner: dict[str, Any] | None = None
    # Spent writing checkpoints and weights so far: what the interval costs
    writing_seconds: float = 0.0
    _last_saved: float = field(default_factory=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        if self.every_epochs is not None and self.every_epochs < 1:
            raise ConfigError(
                "checkpoint interval must be at least 1 epoch, but got "
                f"every_epochs={self.every_epochs}"
            )
        # NaN or inf would never be due: a run that asked for checkpoints would write none
        if self.every_seconds is not None and not 0 < self.every_seconds < math.inf:
            raise ConfigError(
                "checkpoint interval must be a positive number of seconds, but got "
                f"every_seconds={self.every_seconds}"
            )
        # Refused now, not at the first checkpoint, after the data is decoded and an epoch trained
        check_output_folder(self.folder, "checkpoint folder")

    @property
    def path(self) -> Path:
        return self.folder / CHECKPOINT_NAME

    def is_due(self, epoch: int, *, last: bool = False) -> bool:
        if last:
            return self.at_end
        by_epochs = self.every_epochs is not None and epoch % self.every_epochs == 0
        by_seconds = (
            self.every_seconds is not None
            and time.monotonic() - self._last_saved >= self.every_seconds
        )
        return by_epochs or by_seconds

    def write(self, payload: dict[str, Any], path: Path) -> None:
        """Save `payload` atomically, counting the seconds in `writing_seconds`."""
        started = time.monotonic()
        try:
            save_atomically(payload, path)
        except (OSError, RuntimeError) as error:  # torch's zip writer wraps the OSError
            cause = _unwritable_disk(error)
            if cause is not None:
                raise NoSpaceLeft(cause.format(folder=path.parent, name=path.name)) from None
            raise
        self._last_saved = time.monotonic()
        self.writing_seconds += self._last_saved - started


def save_atomically(payload: dict[str, Any], path: Path) -> None:
    write_atomically(path, lambda file: torch.save(payload, file))


def write_atomically(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write to a temporary file beside `path`, then rename: a crash never leaves half a file.

    A SIGKILL or power loss mid-write still leaves the temporary file; the next write to the
    folder removes those (`remove_abandoned_temporaries`), so they never pile up.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_temporaries(path.parent)
    replace_whole(path, write)


# The disk's fault, not the run's: a full disk, a user's quota spent, a file system mounted (or
# remounted on an error) read-only. Each stops a search's worker as a full disk does.
UNWRITABLE_DISK = {
    errno.ENOSPC: "no space left on {folder} to write {name}",
    errno.EDQUOT: "disk quota exceeded on {folder} to write {name}",
    errno.EROFS: "read-only file system at {folder}: cannot write {name}",
}


def _unwritable_disk(error: BaseException | None) -> str | None:
    """What UNWRITABLE_DISK says of the cause of `error`, or None if the disk is not at fault."""
    cause = os_error_in_chain(error, UNWRITABLE_DISK)
    return None if cause is None or cause.errno is None else UNWRITABLE_DISK[cause.errno]


def load(path: Path) -> dict[str, Any]:
    # weights_only refuses pickled code: a checkpoint from a shared folder cannot run anything.
    state = torch.load(path, map_location="cpu", weights_only=True)
    check_checksums(path)  # torch.load reads bytes changed in place, and the run trains on them
    return state


def load_or_set_aside(path: Path) -> dict[str, Any] | None:
    """The checkpoint at `path`, or None when it cannot be read (cut short by a full disk or a
    crash of the machine): then it is renamed out of the way, kept for a look, and said so."""
    try:
        return load(path)
    # torch.load fails on a damaged file with whatever its reader meets first (RuntimeError from
    # the zip reader, EOFError, UnpicklingError), so any failure means "cannot be read".
    except Exception as error:  # noqa: BLE001
        aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, aside)
        logger.warning(
            "checkpoint %s cannot be read (%s); set aside as %s, the run starts from epoch 1",
            path,
            one_line(error) or type(error).__name__,
            aside.name,
        )
        return None


def global_random_state(device: torch.device) -> dict[str, Any]:
    """The global random state, which dropout and stochastic depth draw from (the batches have a
    generator of their own): the CPU's, and for a run on CUDA the GPUs'."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        # A machine with fewer GPUs than the writer's restores those it has
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def rng_states(generator: torch.Generator, random_state: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint holds of a run's random states: its global one (`global_random_state`)
    and its batch generator's."""
    return {
        **random_state,
        "batches": generator.get_state(),
        "batches_device": generator.device.type,  # each kind of device has its own state's shape
    }


def restore_rng_states(
    states: dict[str, Any], generator: torch.Generator, path: Path
) -> dict[str, Any]:
    """Restore the batch generator's state the checkpoint at `path` saved, and return the run's
    global random state (`global_random_state`). The batch generator's is said not to be restored
    when the run was on another kind of device (a retry taken by a CPU worker from a GPU's), whose
    generator state this one does not take: the batches follow the run's seed."""
    random_state = {"torch": states["torch"]}
    if "cuda" in states and generator.device.type == "cuda":
        random_state["cuda"] = states["cuda"]
    if states.get("batches_device", generator.device.type) == generator.device.type:
        try:
            generator.set_state(states["batches"])
            return random_state
        except RuntimeError:  # an older checkpoint, which did not say its device, of another kind
            pass
    logger.warning(
        "%s was written on another kind of device than %s: its batches are shuffled from the "
        "run's seed from here, not as the run would have gone on",
        path,
        generator.device.type,
    )
    return random_state
