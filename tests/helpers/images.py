"""Small image folders the tests make themselves: a learnable task in seconds on a CPU."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image

CLASS_COLOURS = [(220, 40, 40), (40, 200, 60), (50, 70, 230), (230, 210, 40)]


def make_image(label: int, rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A noisy image whose class shows as a colour and a stripe direction."""
    width, height = size
    noise = np.random.default_rng(rng.randrange(2**31)).normal(0, 25, (height, width, 3))
    pixels = np.full((height, width, 3), CLASS_COLOURS[label % len(CLASS_COLOURS)], dtype=float)
    if label % 2:
        stripes = ((np.arange(width) // 4) % 2)[None, :]
    else:
        stripes = ((np.arange(height) // 4) % 2)[:, None]
    pixels = pixels * (0.7 + 0.3 * stripes[..., None])
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def make_image_folder(
    root: Path,
    *,
    classes: int = 3,
    train_per_class: int = 40,
    val_per_class: int = 12,
    seed: int = 0,
    odd_formats: bool = True,
    names: list[str] | None = None,
) -> Path:
    """Write train/<class>/ and val/<class>/ with JPEGs of mixed sizes.

    With odd_formats, the first class also holds a grayscale JPEG, an RGB PNG, a palette PNG
    and a CMYK JPEG, the formats a real folder throws at a loader. `names` names the class
    folders (class_0, class_1, ... by default).
    """
    names = names or [f"class_{label}" for label in range(classes)]
    rng = random.Random(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label in range(classes):
            folder = root / split / names[label]
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                size = (rng.randint(36, 56), rng.randint(36, 56))
                make_image(label, rng, size).save(folder / f"img_{index:04d}.JPEG", quality=90)
    if odd_formats:
        folder = root / "train" / names[0]
        image = make_image(0, rng, (48, 40))
        image.convert("L").save(folder / "gray.JPEG")
        image.save(folder / "rgb.png")
        image.convert("P").save(folder / "palette.png")
        image.convert("CMYK").save(folder / "cmyk.jpg")
    return root
