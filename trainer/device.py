"""Turning a device name a user typed into a torch.device, with errors that say what to do."""

from __future__ import annotations

import torch

from trainer.errors import ConfigError
from trainer.naming import given


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} was asked for, but this machine has no usable CUDA GPU; "
                f"use {given('device', 'cpu')} or {given('device', 'auto')}"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"device {name!r} was asked for, but MPS is not available; use {given('device', 'cpu')}"
        )
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device
