"""Every pixel mode PIL opens from a data folder decodes to the 8-bit RGB a person sees, or is
refused naming the file: a 16-bit PNG is not clipped to white, a palette's transparency warns
nothing, and 32-bit pixels of unknown range are not guessed at."""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.decode import decode_all, decode_image
from trainer.errors import DataError

SIDE = 16  # the images are SIDE x SIDE, so decoding resizes nothing and pixels compare one to one
GREY = np.arange(256, dtype=np.uint8).reshape(SIDE, SIDE)  # every 8-bit value once
RGB = np.stack([GREY, GREY[::-1], GREY.T], axis=-1)


def _png16(pixels: np.ndarray, path: Path) -> None:
    """A 16-bit PNG of grey (H, W) or RGB(A) (H, W, C) uint16 pixels, which PIL cannot write."""
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[1 if pixels.ndim == 2 else pixels.shape[-1]]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    height, width = pixels.shape[:2]
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + checksum

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _wide(pixels: np.ndarray) -> np.ndarray:
    """The 16-bit twin of 8-bit pixels, low bytes set too: 0 -> 0x0000, 255 -> 0xFFFF."""
    return pixels.astype(np.uint16) * 257


def _palette_with_transparency(path: Path) -> None:
    image = Image.fromarray(RGB).quantize(colors=64)
    image.save(path, transparency=bytes([0] * 8 + [255] * 56))


def _expected_palette(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        palette = np.array(image.getpalette()[: 3 * 64], dtype=np.uint8).reshape(-1, 3)
        return palette[np.asarray(image)]


# name: (write the file, the 8-bit RGB it shows, how far a pixel may be off)
Mode = tuple[Callable[[Path], None], Callable[[Path], np.ndarray], int]
MODES: dict[str, Mode] = {
    "L (8-bit grey)": (
        lambda path: Image.fromarray(GREY).save(path),
        lambda path: np.stack([GREY] * 3, axis=-1),
        0,
    ),
    "I;16 (16-bit grey PNG)": (
        lambda path: Image.fromarray(_wide(GREY)).save(path),
        lambda path: np.stack([GREY] * 3, axis=-1),
        1,
    ),
    "16-bit grey, high bytes only": (
        lambda path: Image.fromarray(GREY.astype(np.uint16) << 8).save(path),
        lambda path: np.stack([GREY] * 3, axis=-1),
        1,
    ),
    "16-bit RGB PNG": (lambda path: _png16(_wide(RGB), path), lambda path: RGB, 1),
    "16-bit RGBA PNG": (
        lambda path: _png16(np.dstack([_wide(RGB), np.full_like(GREY, 9, dtype=np.uint16)]), path),
        lambda path: RGB,
        1,
    ),
    "16-bit grey and alpha PNG": (
        lambda path: _png16(np.dstack([_wide(GREY), _wide(GREY[::-1])]), path),
        lambda path: np.stack([GREY] * 3, axis=-1),
        1,
    ),
    "LA (grey and alpha)": (
        lambda path: Image.fromarray(np.dstack([GREY, GREY.T]), "LA").save(path),
        lambda path: np.stack([GREY] * 3, axis=-1),
        0,
    ),
    "RGBA": (
        lambda path: Image.fromarray(np.dstack([RGB, GREY])).save(path),
        lambda path: RGB,
        0,
    ),
    "P with transparency": (_palette_with_transparency, _expected_palette, 0),
    "1 (bilevel)": (
        lambda path: Image.fromarray(GREY >= 128).save(path),
        lambda path: np.stack([np.where(GREY >= 128, 255, 0).astype(np.uint8)] * 3, axis=-1),
        0,
    ),
    "CMYK JPEG": (
        lambda path: Image.fromarray(RGB).convert("CMYK").save(path, "JPEG", quality=100),
        lambda path: RGB,
        12,  # JPEG is lossy, and a 16 px gradient is its worst case
    ),
}


@pytest.mark.parametrize("name", MODES)
def test_each_mode_decodes_to_the_rgb_it_shows(name, tmp_path):
    write, shown, tolerance = MODES[name]
    path = tmp_path / ("image.jpg" if "JPEG" in name else "image.png")
    write(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a decoder's warning would print once per worker
        decoded = decode_image(path, SIDE).permute(1, 2, 0).numpy()
    difference = np.abs(decoded.astype(int) - shown(path).astype(int))
    assert difference.max() <= tolerance, f"{name}: pixels off by up to {difference.max()}"


def test_the_16_bit_png_is_what_the_test_says(tmp_path):
    """The cases above test what they name: PIL reads these files in the modes that clip."""
    Image.fromarray(_wide(GREY)).save(tmp_path / "grey16.png")
    with Image.open(tmp_path / "grey16.png") as image:
        assert image.mode.startswith("I")
        assert (np.asarray(image.convert("RGB")) == 255).mean() > 0.9, "PIL's convert clips"


@pytest.mark.parametrize(
    "pixels, mode",
    [(GREY.astype(np.int32) * 1000, "I"), (GREY.astype(np.float32) / 255, "F")],
    ids=["I", "F"],
)
def test_32_bit_pixels_are_refused_naming_the_file_and_mode(pixels, mode, tmp_path):
    """A TIFF named .png (PIL opens a file by its content): its range is anyone's guess."""
    path = tmp_path / "class_0" / "scan.png"
    path.parent.mkdir()
    Image.fromarray(pixels).save(path, "TIFF")
    with pytest.raises(DataError) as refused:
        decode_all([path], SIDE, progress=False)
    message = str(refused.value)
    assert str(path) in message and f"PIL mode {mode}" in message
    assert "8- or 16-bit" in message


# EXIF orientation (1-8) and the turn a camera stored the pixels with: the inverse of the turn a
# viewer makes to show them (orientation 6, "rotate 90 clockwise to show", is stored turned 90
# anticlockwise)
STORED_TURNED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
ORIENTATION_TAG = 0x0112


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("orientation", [1, *STORED_TURNED])
def test_a_photo_decodes_upright_as_its_exif_orientation_shows_it(orientation, suffix, tmp_path):
    """A phone's photo held sideways is stored sideways with an EXIF orientation: the network
    must see it upright, as every viewer shows it, not lying on its side."""
    shown = Image.fromarray(RGB)
    turn = STORED_TURNED.get(orientation)
    stored = shown.transpose(turn) if turn is not None else shown
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    path = tmp_path / f"photo{suffix}"
    stored.save(path, exif=exif, **({"quality": 100, "subsampling": 0} if suffix == ".jpg" else {}))
    decoded = decode_image(path, SIDE).permute(1, 2, 0).numpy()
    difference = np.abs(decoded.astype(int) - RGB.astype(int))
    assert difference.max() <= (6 if suffix == ".jpg" else 0), f"pixels off by {difference.max()}"


def test_a_damaged_exif_block_leaves_the_pixels_as_stored(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(RGB).save(path, exif=b"Exif\x00\x00not a TIFF header")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's warning would print once per image and worker
        decoded = decode_image(path, SIDE).permute(1, 2, 0).numpy()
    assert np.array_equal(decoded, RGB)
