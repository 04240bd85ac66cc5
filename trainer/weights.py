"""The weights file: a trained network alone, with what it needs to be checked and rebuilt.

Written at the end of a run (`weights.pt` beside the checkpoint) and read by `evaluate` and by
export; this module is the one place that knows its keys.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.config import TrainConfig
from trainer.errors import ConfigError
from trainer.files import WEIGHTS_NAME, begins_as_saved, check_checksums, check_weights_path
from trainer.model import DEFAULT_MODEL, build_model, check_model_name
from trainer.sources import one_line

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
    """Read a weights file; anything else (a checkpoint, another file, a damaged or hand-made
    one) is a ConfigError naming it and, where it has the keys, the field that is wrong."""
    path = check_weights_path(path)
    payload = _read_payload(path)
    if not isinstance(payload, dict):
        raise ConfigError(
            f"{path} is not a weights file saved by `hpsearch train`: it holds "
            f"{_described(payload)}, not a dict of {', '.join(REQUIRED_KEYS)}; {_USE}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise ConfigError(
            f"{path} is not a weights file saved by `hpsearch train`: it has no "
            f"{', '.join(missing)}{_checkpoint_hint(payload)}"
        )
    for key, (fits, expected) in FIELDS.items():
        if key in payload and not fits(payload[key]):
            raise ConfigError(
                f"{path} is damaged or not from hpsearch: its {key} is "
                f"{_described(payload[key])}, but should be {expected}; {_USE}"
            )
    return Weights(
        path,
        payload.get("architecture", DEFAULT_MODEL),
        tuple(payload["classes"]),
        payload["image_size"],
        dict(payload.get("config") or {}),
        payload["model"],
        payload.get("owner"),
    )


def _read_payload(path: Path) -> Any:
    # weights_only: a weights file unpickles to plain containers and tensors, never to code
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    # torch.load fails on a foreign file with whatever its unpickler meets first (KeyError,
    # EOFError, UnpicklingError, RuntimeError), so any failure means "not a weights file".
    except Exception as error:  # noqa: BLE001
        said = textwrap.shorten(one_line(error), 120, placeholder=" ...")  # at a word's end
        cut = f"it looks cut short or damaged (torch: {said}); copy it again"
        raise ConfigError(
            f"{path} is not a weights file: "
            f"{cut if begins_as_saved(path) else 'torch cannot read it'}; {_USE}"
        ) from None
    try:
        check_checksums(path)  # torch.load reads weights whose bytes were damaged, silently
    except ValueError as error:
        raise ConfigError(f"{path} cannot be used: {error}; copy it again") from None
    return payload


def _is_classes(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) > 0
        and all(isinstance(name, str) and name for name in value)
        and len(set(value)) == len(value)
    )


def _is_state(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(key, str) and isinstance(tensor, torch.Tensor) for key, tensor in value.items()
    )


# What each field must be, checked before the data is read, so that a damaged or hand-made file
# is refused naming its field rather than failing later inside torch or Python
FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "classes": (_is_classes, "a list of distinct class folder names"),
    "image_size": (
        lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        "a whole number of pixels",
    ),
    "model": (_is_state, "the network's state dict (parameter names to tensors)"),
    "architecture": (lambda value: isinstance(value, str), "a torchvision model name"),
    "config": (lambda value: value is None or isinstance(value, dict), "a dict of settings"),
    "owner": (lambda value: value is None or isinstance(value, dict), "a dict or nothing"),
}
_USE = (
    f"use the {WEIGHTS_NAME} that `hpsearch train --checkpoint-dir` writes, or the "
    "NAME.weights.pt of `hpsearch export`"
)


def _described(value: Any) -> str:
    """A value as an error shows it: a tensor by its shape, anything else by a short repr."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if value is None:
        return "None"
    shown = repr(value)
    return f"{shown if len(shown) <= 40 else shown[:37] + '...'} (a {type(value).__name__})"


def _checkpoint_hint(payload: Any) -> str:
    if isinstance(payload, dict) and "optimizer" in payload and "model" in payload:
        return f" (it is a training checkpoint; use the {WEIGHTS_NAME} beside it)"
    return ""


def check_fits(weights: Weights, classes: tuple[str, ...], data_name: str) -> None:
    """The weights must be of a model this torchvision builds, trained on exactly these classes, in
    this order."""
    _check_buildable(weights)
    if tuple(weights.classes) != tuple(classes):
        raise ConfigError(
            f"{weights.path} was trained on {len(weights.classes)} classes "
            f"({class_names(weights.classes)}), but {data_name} has {len(classes)} classes "
            f"({class_names(classes)}); score them on data with their classes, or use weights "
            "trained on this data"
        )


def _check_buildable(weights: Weights) -> None:
    try:
        check_model_name(weights.architecture)
    except ConfigError as error:
        raise ConfigError(
            f"{weights.path} holds a network this torchvision cannot build: {error}"
        ) from None


def class_names(classes: tuple[str, ...]) -> str:
    """The classes for an error line: their names, the first MAX_NAMED_CLASSES of many."""
    shown = ", ".join(classes[:MAX_NAMED_CLASSES])
    return shown + (
        f", ... {len(classes) - MAX_NAMED_CLASSES} more" if len(classes) > MAX_NAMED_CLASSES else ""
    )


def build_network(weights: Weights, device: torch.device) -> torch.nn.Module:
    """The network the weights belong to, on `device`, with the weights loaded."""
    _check_buildable(weights)
    model = build_model(len(weights.classes), device, weights.architecture)
    does_not_fit = (
        f"{weights.path} does not fit a {weights.architecture} with {len(weights.classes)} "
        "classes: "
    )
    try:
        loaded = model.load_state_dict(weights.state, strict=False)
    except RuntimeError as error:  # a tensor of another shape: torch lists each, one a line
        lines = str(error).strip().splitlines()
        raise ConfigError(
            does_not_fit + (lines[1].strip() if len(lines) > 1 else lines[0]) + f"; {_USE}"
        ) from None
    keys = {"missing": loaded.missing_keys, "unexpected": loaded.unexpected_keys}
    wrong = [f"{len(names)} {what} ({_few(names)})" for what, names in keys.items() if names]
    if wrong:
        raise ConfigError(does_not_fit + f"parameters {', '.join(wrong)}; {_USE}")
    return model


def _few(names: list[str]) -> str:
    """The first few parameter names: a ResNet has 122, too many for one line."""
    return ", ".join(names[:3]) + (f", ... {len(names) - 3} more" if len(names) > 3 else "")
