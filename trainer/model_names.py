"""Model names: which torchvision classification models exist, and the image sizes they take.

Settings are checked (`TrainConfig`) by commands that only read a study, which load no torch: the
default model is known without asking torchvision, which is imported (once) only to check another.
"""

from __future__ import annotations

import difflib
import functools

from trainer.errors import ConfigError

DEFAULT_MODEL = "resnet18"  # what the original experiment settled on, and what older runs trained
CLOSE_MATCHES = 3  # names an unknown model's error suggests
EXAMPLES = ("resnet18", "resnet34", "resnet50")


@functools.cache
def model_names() -> tuple[str, ...]:
    """The classification models this torchvision builds by name (not detection, segmentation or
    video models, which live in its submodules)."""
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


def check_model_name(name: str) -> None:
    """An unknown name is one line with the closest known names."""
    if name == DEFAULT_MODEL or name in model_names():
        return
    close = difflib.get_close_matches(name.lower(), model_names(), n=CLOSE_MATCHES, cutoff=0.5)
    hint = (
        f"close matches: {', '.join(close)}"
        if close
        else f"no close match; for example {', '.join(EXAMPLES)}"
    )
    raise ConfigError(
        f"unknown model {name!r}; {hint} (any name of "
        "torchvision.models.list_models(module=torchvision.models) works)"
    )


@functools.cache
def min_image_size(model: str) -> int:
    """The smallest side in px the model takes, as torchvision records it with the model's
    weights (`min_size`): 1 for the ResNets, 75 for Inception v3, 224 for the ViTs."""
    if model == DEFAULT_MODEL:
        return 1
    import torchvision

    weights = torchvision.models.get_model_weights(model)
    return min((max(entry.meta.get("min_size", (1, 1))) for entry in weights), default=1)


# Families whose torchvision builder fixes the side the network takes, at its smallest (224 px): a
# ViT's position embeddings count its patches, a MaxViT's windows tile its blocks exactly. Any other
# side fails in the first forward pass (AssertionError, RuntimeError), after the data is decoded.
FIXED_SIDE_FAMILIES = ("vit_", "maxvit_")


def check_image_size(model: str, image_size: int) -> None:
    """Smaller images fail deep inside the network's forward pass, after the data is decoded; so
    does any side but its own for a network built for one side."""
    needed = min_image_size(model)
    if model.startswith(FIXED_SIDE_FAMILIES) and image_size != needed:
        raise ConfigError(
            f"model {model!r} takes images of exactly {needed} px (torchvision builds it for that "
            f"side), but got image_size={image_size}; use image_size={needed}"
        )
    if image_size < needed:
        raise ConfigError(
            f"model {model!r} needs images of at least {needed} px, but got image_size={image_size}"
        )
