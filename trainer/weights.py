"""The weights file: a trained network alone, with what it needs to be checked and rebuilt.

Written at the end of a run (`weights.pt` beside the checkpoint) and read by `evaluate` and by
export; this module is the one place that knows its keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.config import TrainConfig
from trainer.errors import ConfigError
from trainer.files import WEIGHTS_NAME
from trainer.model import DEFAULT_MODEL, build_model, check_model_name

# "config" is optional: older files lack it; "architecture" (the model's name) too, since files
# written before a run could name its model hold a ResNet-18
REQUIRED_KEYS = (
    "classes",
    "image_size",
    "model",
)
MAX_NAMED_CLASSES = 12  # an error lists at most this many class names of each side


@dataclass(frozen=True)
class Weights:
    path: Path
    architecture: str  # the model's name, as `build_model` takes it
    classes: tuple[str, ...]
    image_size: int  # px, the side the network was trained on
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    owner: dict[str, Any] | None = (
        None  # who trained them, for a search trial: see CheckpointPolicy
    )


def weights_payload(
    model: torch.nn.Module,
    config: TrainConfig,
    classes: tuple[str, ...],
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a weights file holds: the network's state, its architecture, classes and settings."""
    return {
        "architecture": config.model,
        "classes": list(classes),
        "image_size": config.image_size,
        "config": config.to_dict(),
        "owner": owner,
        "model": model.state_dict(),
    }


def load_weights(path: str | Path) -> Weights:
    """Read a weights file; anything else (a checkpoint,
    another file) is a ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    # torch.load fails on a foreign file with whatever its unpickler meets first (KeyError,
    # EOFError, UnpicklingError, RuntimeError), so any failure means "not a weights file".
    except Exception:  # noqa: BLE001
        raise ConfigError(
            f"{path} is not a weights file: torch cannot read it; expected the {WEIGHTS_NAME} that "
            "`hpsearch train --checkpoint-dir` writes, or the NAME.weights.pt of `hpsearch export`"
        ) from None
    missing = [key for key in REQUIRED_KEYS if not isinstance(payload, dict) or key not in payload]
    if missing:
        raise ConfigError(
            f"{path} is not a weights file saved by `hpsearch train`: it has no "
            f"{', '.join(missing)}{_checkpoint_hint(payload)}"
        )
    return Weights(
        path,
        str(payload.get("architecture", DEFAULT_MODEL)),
        tuple(payload["classes"]),
        int(payload["image_size"]),
        dict(payload.get("config") or {}),
        payload["model"],
        payload.get("owner"),
    )


def _checkpoint_hint(payload: Any) -> str:
    if isinstance(payload, dict) and "optimizer" in payload and "model" in payload:
        return f" (it is a training checkpoint; use the {WEIGHTS_NAME} beside it)"
    return ""


def check_fits(weights: Weights, classes: tuple[str, ...], data_name: str) -> None:
    """The weights must be of a model this torchvision builds, trained on exactly these classes, in
    this order."""
    try:
        check_model_name(weights.architecture)
    except ConfigError as error:
        raise ConfigError(
            f"{weights.path} holds a network this torchvision cannot build: {error}"
        ) from None
    if tuple(weights.classes) != tuple(classes):
        raise ConfigError(
            f"{weights.path} was trained on {len(weights.classes)} classes "
            f"({_names(weights.classes)}), but {data_name} has {len(classes)} classes "
            f"({_names(classes)})"
        )


def _names(classes: tuple[str, ...]) -> str:
    shown = ", ".join(classes[:MAX_NAMED_CLASSES])
    return shown + (
        f", ... {len(classes) - MAX_NAMED_CLASSES} more" if len(classes) > MAX_NAMED_CLASSES else ""
    )


def build_network(weights: Weights, device: torch.device) -> torch.nn.Module:
    """The network the weights belong to, on `device`, with the weights loaded."""
    model = build_model(len(weights.classes), device, weights.architecture)
    try:
        model.load_state_dict(weights.state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise ConfigError(
            f"{weights.path} does not fit a {weights.architecture} with "
            f"{len(weights.classes)} classes: "
            f"{first[1].strip() if len(first) > 1 else first[0]}"
        ) from None
    return model
