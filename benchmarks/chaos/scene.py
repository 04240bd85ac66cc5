"""What a chaos run runs on: its settings, each round's study file, the checkpoint tmpfs."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# A small model keeps a laptop's run quick and its checkpoints a few MB, so a tmpfs of a hundred
# MB holds every paused trial's; `--model resnet18` runs the real thing (130 MB checkpoints).
DEFAULT_MODEL = "shufflenet_v2_x0_5"


@dataclass(frozen=True)
class Settings:
    seed: int = 1
    minutes: float = 10.0  # faults are injected for this long
    workers: int = 3
    trials: int = 12  # each study's trial budget
    epochs: int = 6
    images_per_class: int = 200  # training images of each of 3 classes: an epoch of seconds
    epochs_budget: int | None = None  # each study's [study] epochs_budget; None: trials*epochs/2
    model: str = DEFAULT_MODEL
    trials_per_worker: int = 1
    faults: tuple[str, ...] = ()  # the kinds to inject (faults.KINDS); empty: all of them
    in_order: bool = False  # inject `faults` in their order (each once it can strike), not drawn
    max_faults: int | None = None  # over the whole run
    gap_seconds: tuple[float, float] = (8.0, 30.0)  # between faults, drawn uniformly
    cap_minutes: float = 15.0  # after --minutes, how long the last study may take to finish
    tmpfs_mb: int | None = 96  # the checkpoint folder's size; None: a plain folder, no disk fault
    interval_seconds: int = 1  # heartbeat
    grace_seconds: int = 5
    every_epochs: int = 1  # checkpoint interval
    rounds: int | None = None  # studies at most; None: as many as the minutes allow
    through_proxy: bool = False  # the workers reach the database through `hpsearch grpc-proxy`

    @property
    def study_epochs_budget(self) -> int:
        if self.epochs_budget is not None:
            return self.epochs_budget
        return max(1, self.trials * self.epochs // 2)


def study_name(round_number: int) -> str:
    return f"chaos-{round_number}"


def write_study_file(folder: Path, settings: Settings, images: Path, round_number: int) -> Path:
    """asha (rungs at 1, 2, 4... epochs), an epoch budget, a checkpoint every epoch and a heartbeat
    short enough that a stopped worker is given up in seconds."""
    name = study_name(round_number)
    path = folder / f"{name}.toml"
    path.write_text(f"""
[study]
name = "{name}"
trials = {settings.trials}
epochs_budget = {settings.study_epochs_budget}
seed = {settings.seed * 1000 + round_number}

[data]
source = "{images}"
image_size = 32
batch_size = 32

[train]
epochs = {settings.epochs}
model = "{settings.model}"

[space]
optimizer = ["sgd", "adam"]
lr = {{ low = 1e-3, high = 0.1 }}
eps = {{ low = 1e-8, high = 1e-6 }}
momentum = {{ low = 0.0, high = 0.9 }}

[sampler]
kind = "random"

[pruner]
kind = "asha"
min_epochs = 1
reduction_factor = 2

[heartbeat]
interval_seconds = {settings.interval_seconds}
grace_seconds = {settings.grace_seconds}

[checkpoint]
every_epochs = {settings.every_epochs}
""")
    return path


class TmpfsUnavailable(RuntimeError):
    """The tmpfs could not be mounted (not root, or no mount namespace of our own)."""


@contextmanager
def tmpfs(folder: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of `megabytes` mounted on `folder` (which is made), unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        raise TmpfsUnavailable(mounted.stderr.strip() or f"mount exited {mounted.returncode}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
