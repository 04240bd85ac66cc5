"""The network: a torchvision classification model by name, trained from scratch (ResNet-18 unless
a run names another)."""

from __future__ import annotations

import torch
import torchvision

from trainer.model_names import DEFAULT_MODEL, check_model_name

__all__ = ["DEFAULT_MODEL", "build_model", "check_model_name"]

# Models that, built from scratch, return auxiliary classifiers' logits beside their own in
# training mode (the training loop's loss takes one tensor of logits), and warn unless told which
# initialisation to use (theirs, as in torchvision's training recipes).
BUILD_OPTIONS = {
    name: {"aux_logits": False, "init_weights": True} for name in ("googlenet", "inception_v3")
}


def build_model(
    num_classes: int, device: torch.device, model: str = DEFAULT_MODEL
) -> torch.nn.Module:
    check_model_name(model)
    network = torchvision.models.get_model(
        model, weights=None, num_classes=num_classes, **BUILD_OPTIONS.get(model, {})
    )
    # channels_last lets cuDNN pick its fastest convolutions under bf16; on the CPU it only costs.
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    return network.to(device=device, memory_format=memory_format)
