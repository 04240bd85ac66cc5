"""Decoding image files into uint8 squares, in parallel, naming every file that fails.

Each image's shorter side is resized to the cache side S and centre-cropped to S x S.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from trainer.cpus import usable_cpus
from trainer.errors import DataError
from trainer.sources import one_line

DECODE_BATCH = 64  # images per decoding task; large enough that worker start-up is amortised
MAX_DECODE_WORKERS = 8
MAX_LISTED_FAILURES = 10
# Formats whose PIL mode I holds 16-bit pixels (0..65535), not 32-bit ones of unknown range
_SIXTEEN_BIT_I = ("PNG", "PPM")


def decode_image(path: Path | str, side: int) -> torch.Tensor:
    """uint8 (3, side, side): any mode made RGB, turned upright as its EXIF orientation says (as
    a photo viewer shows it), shorter side resized to `side`, centre-cropped."""
    with _open_naming_warnings(path) as image:
        # JPEGs decode at 1/2, 1/4 or 1/8 scale almost for free; draft keeps at least `side` px.
        image.draft("RGB", (side, side))
        _turn_upright(image)
        rgb = _as_rgb(image)
    width, height = rgb.size
    scale = side / min(width, height)
    size = (max(side, round(width * scale)), max(side, round(height * scale)))
    rgb = rgb.resize(size, Image.Resampling.BILINEAR)  # PIL antialiases when it shrinks
    left, top = (size[0] - side) // 2, (size[1] - side) // 2
    rgb = rgb.crop((left, top, left + side, top + side))
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).contiguous()


def _open_naming_warnings(path: Path | str) -> Image.Image:
    """PIL's Image.open, its warnings (a decompression bomb's: an image of over 89 million pixels)
    said again naming the file, which PIL's own leave out."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = Image.open(path)
    for warning in caught:
        said = " ".join(str(warning.message).split())
        if issubclass(warning.category, Image.DecompressionBombWarning):
            said = f"{said.rstrip('.')}; decoded anyway, shrunk to the cache side"
        warnings.warn(f"image {path}: {said}", warning.category, stacklevel=3)
    return image


def _turn_upright(image: Image.Image) -> None:
    """Turn `image` in place as its EXIF orientation says: a camera stores the pixels as its sensor
    saw them and says there how a viewer must turn them. In place, so the mode and format that
    _as_rgb reads stay the file's. An EXIF block PIL cannot read gives no orientation: the pixels
    stay as stored, as they did before orientation was read."""
    image.load()  # a damaged image fails here, and is named as unreadable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL warns of each damaged EXIF block it reads around
        try:
            ImageOps.exif_transpose(image, in_place=True)
        # Whatever PIL's EXIF reader raises (SyntaxError for a block that is not TIFF) is about
        # the metadata only: the pixels are fine
        except Exception:  # noqa: BLE001
            return


def _as_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode PIL opens. PIL's own convert clips 16-bit grey to 255 (a 16-bit
    PNG's pixels all but black turn white) and warns on a palette's transparency, so those two are
    done here; 32-bit pixels of unknown range are refused, naming the mode."""
    # PIL reads a 16-bit grey PNG as I;16 (older versions: I), and a PGM of more than 8 bits as I
    # scaled to 0..65535; 16-bit RGB(A) it reads as 8-bit
    if image.mode.startswith("I;16") or (image.mode == "I" and image.format in _SIXTEEN_BIT_I):
        wide = np.asarray(image).astype(np.uint32)
        return Image.fromarray(((wide + 128) // 257).astype(np.uint8)).convert("RGB")  # 65535: 255
    if image.mode in ("I", "F"):
        kind = "integers" if image.mode == "I" else "floating-point numbers"
        raise ValueError(
            f"its pixels are 32-bit {kind} (PIL mode {image.mode}), whose range cannot be known; "
            "save it as an 8- or 16-bit image"
        )
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # then the alpha goes, as for any RGBA or LA image
    return image.convert("RGB")


class _DecodeFiles(Dataset):
    def __init__(self, paths: list[Path], side: int):
        self.paths = paths
        self.side = side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            return index, decode_image(self.paths[index], self.side), ""
        # Whatever a decoder raises is about this file: collect, and report all at once.
        except Exception as exc:  # noqa: BLE001
            return index, None, f"{type(exc).__name__}: {one_line(exc)}"


class _DecodedBatch(NamedTuple):
    indices: torch.Tensor  # int64, where `images` go in the whole list
    images: torch.Tensor  # uint8 (n, 3, S, S) of the files that decoded
    failures: list[tuple[int, str]]  # (index, error) of those that did not
    size: int  # files tried


def _collate_decoded(samples: list[tuple[int, torch.Tensor | None, str]]) -> _DecodedBatch:
    decoded = [(index, image) for index, image, _ in samples if image is not None]
    failures = [(index, error) for index, image, error in samples if image is None]
    images = (
        torch.stack([image for _, image in decoded])
        if decoded
        else torch.empty(0, dtype=torch.uint8)
    )
    return _DecodedBatch(
        torch.tensor([index for index, _ in decoded], dtype=torch.int64),
        images,
        failures,
        len(samples),
    )


def decode_all(paths: list[Path], side: int, progress: bool) -> torch.Tensor:
    """uint8 (N, 3, S, S) in the order of `paths`; one DataError lists every unreadable file."""
    images = torch.empty((len(paths), 3, side, side), dtype=torch.uint8)
    failures: list[tuple[int, str]] = []
    loader = DataLoader(
        _DecodeFiles(paths, side),
        batch_size=DECODE_BATCH,
        collate_fn=_collate_decoded,
        num_workers=_decode_workers(len(paths)),
    )
    with tqdm(
        total=len(paths), desc="decoding images into cache", unit="image", disable=not progress
    ) as bar:
        for batch in loader:
            if batch.indices.numel():
                images[batch.indices] = batch.images
            failures.extend(batch.failures)
            bar.update(batch.size)
    if failures:
        raise _unreadable(paths, sorted(failures))
    return images


def _decode_workers(count: int) -> int:
    tasks = -(-count // DECODE_BATCH)
    workers = min(MAX_DECODE_WORKERS, usable_cpus(), tasks)  # a cpuset's, not the machine's
    # A single worker only adds a process start to the main one
    return workers if workers > 1 else 0


def _unreadable(paths: list[Path], failures: list[tuple[int, str]]) -> DataError:
    listed = "; ".join(
        f"{paths[index]} ({error})" for index, error in failures[:MAX_LISTED_FAILURES]
    )
    more = (
        f"; and {len(failures) - MAX_LISTED_FAILURES} more"
        if len(failures) > MAX_LISTED_FAILURES
        else ""
    )
    return DataError(
        f"{len(failures)} image(s) could not be read: {listed}{more}; "
        "fix or remove them, then run again (nothing was cached)"
    )
