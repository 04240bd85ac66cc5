"""Training and evaluation batches made on the training device from a uint8 ImageSplit.

Random-resized crops and flips of a whole batch are one affine_grid + grid_sample, so augmentation
costs a few kernel launches per batch rather than Python work per image (as in airbench). Nothing
here reads a tensor's value on the host, so a GPU never waits for the CPU between batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from trainer.data import ImageSplit
from trainer.errors import ConfigError, DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # of pixel values scaled to 0..1
IMAGENET_STD = (0.229, 0.224, 0.225)
LOG_ASPECT_RATIOS = (math.log(3 / 4), math.log(4 / 3))  # range of log(width / height) of a crop

Batch = tuple[torch.Tensor, torch.Tensor]  # float32 (B, 3, image_size, image_size), int64 (B,)


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Full batches only, so each step sees batch_size images; one smaller if that is all. Never a
    batch of one image, on which BatchNorm cannot train: TrainConfig asks batch_size >= 2, a data
    folder holds 2 classes or more, and a training split of one image is refused here."""
    _check_positive(batch_size=batch_size)
    if num_images < 0:
        raise DataError(f"num_images must be >= 0, but got num_images={num_images}")
    if num_images == 1:
        raise DataError(
            "a training split of 1 image cannot train: BatchNorm needs batches of 2 or more; "
            "add images"
        )
    return max(1, num_images // batch_size) if num_images else 0


def train_batches(
    split: ImageSplit,
    *,
    batch_size: int,
    image_size: int,
    min_scale: float,
    generator: torch.Generator,
) -> Iterator[Batch]:
    """One epoch in random order, each image randomly cropped, resized and flipped.

    Every random number comes from `generator` (on the split's device), so the same generator
    state gives the same epoch.
    """
    _check_positive(batch_size=batch_size, image_size=image_size)
    if not 0 < min_scale <= 1:
        raise ConfigError(f"min_scale must be in (0, 1], but got min_scale={min_scale}")
    return _train_batches(split, batch_size, image_size, min_scale, generator)


def _train_batches(
    split: ImageSplit,
    batch_size: int,
    image_size: int,
    min_scale: float,
    generator: torch.Generator,
) -> Iterator[Batch]:
    device = split.images.device
    scale, offset = _normaliser(device)
    order = torch.randperm(len(split), generator=generator, device=device)
    for step in range(steps_per_epoch(len(split), batch_size)):
        indices = order[step * batch_size : (step + 1) * batch_size]
        images = split.images.index_select(0, indices).float()
        theta = _crop_and_flip(indices.shape[0], min_scale, generator, device)
        grid = F.affine_grid(
            theta, [indices.shape[0], 3, image_size, image_size], align_corners=False
        )
        crops = F.grid_sample(
            images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )
        yield torch.addcmul(offset, crops, scale), split.labels.index_select(0, indices)


def _crop_and_flip(
    count: int, min_scale: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(count, 2, 3) affine maps from output to input coordinates, both in [-1, 1]."""
    uniform = torch.rand(count, 5, generator=generator, device=device)
    area = min_scale + (1 - min_scale) * uniform[:, 0]  # fraction of the cached square
    low, high = LOG_ASPECT_RATIOS
    aspect = (low + (high - low) * uniform[:, 1]).exp()
    # A side longer than the image is cut to it: the crop then keeps less area, never pads.
    width = (area * aspect).sqrt().clamp(max=1)
    height = (area / aspect).sqrt().clamp(max=1)
    centre_x = (1 - width) * (2 * uniform[:, 2] - 1)  # any centre that keeps the crop inside
    centre_y = (1 - height) * (2 * uniform[:, 3] - 1)
    flip = 1 - 2 * (uniform[:, 4] < 0.5).float()  # -1 mirrors left and right
    zero = torch.zeros_like(width)
    return torch.stack([width * flip, zero, centre_x, zero, height, centre_y], dim=1).view(
        count, 2, 3
    )


def eval_batches(split: ImageSplit, *, batch_size: int, image_size: int) -> Iterator[Batch]:
    """The split in order, each image's centre image_size
    square, exactly as cached (no resampling)."""
    _check_positive(batch_size=batch_size, image_size=image_size)
    side = split.images.shape[-1]
    if side < image_size:
        raise DataError(
            f"images are cached at {side} px, smaller than image_size={image_size}; "
            f"load the data for image_size={image_size}"
        )
    return _eval_batches(split, batch_size, image_size)


def _eval_batches(split: ImageSplit, batch_size: int, image_size: int) -> Iterator[Batch]:
    scale, offset = _normaliser(split.images.device)
    start = (split.images.shape[-1] - image_size) // 2
    crop = slice(start, start + image_size)
    for first in range(0, len(split), batch_size):
        images = split.images[first : first + batch_size, :, crop, crop].float()
        yield (
            torch.addcmul(offset, images, scale).contiguous(),
            split.labels[first : first + batch_size],
        )


def _normaliser(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, offset), each (1, 3, 1, 1): normalised = pixel (0..255) * scale + offset."""
    scale = torch.empty(1, 3, 1, 1, device=device)
    offset = torch.empty(1, 3, 1, 1, device=device)
    # Filled from Python numbers, which travel as kernel arguments: copying a host tensor to a
    # GPU (torch.tensor(..., device=...)) would make the host wait for the GPU.
    for channel, (mean, std) in enumerate(zip(IMAGENET_MEAN, IMAGENET_STD)):
        scale[0, channel].fill_(1 / (255 * std))
        offset[0, channel].fill_(-mean / std)
    return scale, offset


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, but got {name}={value}")
