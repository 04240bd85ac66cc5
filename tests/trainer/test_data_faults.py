"""Faults a user meets in a data folder or archive: each is read right, or named in one line that
says what to do, and the cache never serves images the folder no longer holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import trainer.data
import trainer.decode
from tests.helpers.images import make_image_folder
from trainer.data import load_image_data
from trainer.decode import decode_image
from trainer.errors import DataError
from trainer.listing import scan_folder
from trainer.sources import resolve_data_dir

SIDE = 16


def plain_folder(root: Path, classes: dict[str, str]) -> Path:
    """train/ and val/ with two flat BMPs (fixed file size) per class; `classes` maps each class's
    name in train/ to its name in val/."""
    for split in ("train", "val"):
        for label, (train_name, val_name) in enumerate(classes.items()):
            folder = root / split / (train_name if split == "train" else val_name)
            folder.mkdir(parents=True)
            for index in range(2):
                pixels = np.full((SIDE, SIDE, 3), 40 * label + index, np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.bmp")
    return root


def test_a_16_bit_pgm_decodes_to_the_grey_it_shows(tmp_path):
    """PIL reads a PGM of more than 8 bits as mode I scaled to 0..65535, as it reads a 16-bit PNG;
    a .pgm is an image file torchvision's ImageFolder takes."""
    grey = np.arange(SIDE * SIDE, dtype=np.uint16).reshape(SIDE, SIDE) * 257  # 0..65535
    path = tmp_path / "scan.pgm"
    path.write_bytes(b"P5\n%d %d\n65535\n" % (SIDE, SIDE) + grey.astype(">u2").tobytes())
    decoded = decode_image(path, SIDE)
    expected = torch.from_numpy((grey // 257).astype(np.uint8))
    assert all(torch.equal(channel, expected) for channel in decoded)


def test_an_image_replaced_keeping_its_size_and_time_is_decoded_again(tmp_path, monkeypatch):
    """`cp -p`, `rsync -a` and tar put back a replaced file's modification time; a BMP of the same
    size is the same number of bytes."""
    folder = plain_folder(tmp_path / "images", {"a": "a", "b": "b"})
    before = load_image_data(folder, 8, cache_dir=tmp_path / "cache", progress=False)
    image = folder / "train" / "a" / "0.bmp"
    kept = image.stat()
    Image.fromarray(np.full((SIDE, SIDE, 3), 255, np.uint8)).save(image)
    os.utime(image, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    assert (image.stat().st_size, image.stat().st_mtime_ns) == (kept.st_size, kept.st_mtime_ns)
    monkeypatch.setattr(trainer.data, "_LOADED", {})  # as a new run would
    after = load_image_data(folder, 8, cache_dir=tmp_path / "cache", progress=False)
    assert int(before.train.images[0].max()) == 0
    assert int(after.train.images[0].min()) == 255


def test_class_folders_that_print_alike_are_shown_escaped(tmp_path):
    """`café` written by a Mac (NFD: e and a combining accent) and by Linux (NFC: é) print alike
    but are two names; so are names differing in letter case."""
    nfc, nfd = (unicodedata.normalize(form, "café") for form in ("NFC", "NFD"))
    folder = plain_folder(tmp_path / "images", {nfc: nfd, "Dog": "dog"})
    with pytest.raises(DataError) as refused:
        scan_folder(folder)
    message = str(refused.value)
    assert "'caf\\xe9' in train/ and 'cafe\\u0301' in val/" in message
    assert "'Dog' in train/ and 'dog' in val/" in message
    assert "rename one folder" in message and "\n" not in message


def test_an_archive_of_the_folders_above_the_data_is_read(tmp_path):
    folder = make_image_folder(
        tmp_path / "made" / "imagenette", train_per_class=2, val_per_class=1, odd_formats=False
    )
    archive = tmp_path / "work.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="home/work/imagenette")
    found = resolve_data_dir(archive, data_root=tmp_path / "root", progress=False)
    assert found.relative_to(tmp_path / "root").parts[1:] == ("home", "work", "imagenette")
    assert len(scan_folder(found).train) == 6


def test_an_archive_holding_two_data_folders_names_both(tmp_path):
    archive = tmp_path / "two.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("first", "second"):
            made = make_image_folder(
                tmp_path / "made" / name, train_per_class=1, val_per_class=1, odd_formats=False
            )
            tar.add(made, arcname=f"sets/{name}")
    with pytest.raises(DataError, match="holds 2") as refused:
        resolve_data_dir(archive, data_root=tmp_path / "root", progress=False)
    assert "sets/first" in str(refused.value) and "sets/second" in str(refused.value)


def test_a_decompression_bomb_warning_names_the_image(tmp_path, monkeypatch):
    """PIL warns of an image over MAX_IMAGE_PIXELS (89 million) without naming the file; the
    limit is lowered here so that a small image meets it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", SIDE * SIDE)
    path = tmp_path / "big.png"
    Image.new("RGB", (SIDE + 4, SIDE)).save(path)  # over the limit, under twice it (an error)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decode_image(path, SIDE)
    [warning] = caught
    assert issubclass(warning.category, Image.DecompressionBombWarning)
    assert str(warning.message).startswith(f"image {path}: Image size (320 pixels)")


def test_a_folder_of_a_long_name_is_cached(tmp_path, monkeypatch):
    """A file name may have 255 bytes: 80 letters of three bytes each name a folder, but with the
    side, the digest and a temporary suffix they named no cache file."""
    folder = plain_folder(tmp_path / ("日" * 80), {"a": "a", "b": "b"})
    decoded = load_image_data(folder, 8, cache_dir=tmp_path / "cache", progress=False)
    [cache] = (tmp_path / "cache").glob("*.pt")
    assert cache.name.startswith("日" * 33 + "-10px-")  # 100 bytes of the name
    monkeypatch.setattr(trainer.data, "_LOADED", {})
    monkeypatch.setattr(trainer.decode, "decode_image", refuse_to_decode)
    again = load_image_data(folder, 8, cache_dir=tmp_path / "cache", progress=False)
    assert torch.equal(again.train.images, decoded.train.images)


def refuse_to_decode(path, side):
    raise AssertionError(f"decoded {path} although the cache is up to date")


KILLED_WRITER = """
import sys, time
from pathlib import Path
from trainer.checkpoint import write_atomically

def write(file):
    file.write(bytes(100_000))
    file.flush()
    print("writing", flush=True)
    time.sleep(600)

write_atomically(Path(sys.argv[1]), write)
"""


def test_what_a_writer_killed_mid_write_left_goes_though_the_cache_is_only_read(
    tmp_path, monkeypatch
):
    """A cache written by another run is read from then on: no write comes to sweep the folder."""
    folder = plain_folder(tmp_path / "images", {"a": "a", "b": "b"})
    cache_dir = tmp_path / "cache"
    load_image_data(folder, 8, cache_dir=cache_dir, progress=False)
    [cache] = cache_dir.glob("*.pt")
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(cache)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    ) as writer:
        assert writer.stdout is not None and writer.stdout.readline() == b"writing\n"
        writer.send_signal(signal.SIGKILL)
    [left] = [path for path in cache_dir.iterdir() if path.name.endswith(".tmp")]
    an_hour_ago = time.time() - 3600
    os.utime(left, (an_hour_ago, an_hour_ago))
    monkeypatch.setattr(trainer.data, "_LOADED", {})
    monkeypatch.setattr(trainer.decode, "decode_image", refuse_to_decode)
    load_image_data(folder, 8, cache_dir=cache_dir, progress=False)
    assert sorted(path.name for path in cache_dir.iterdir()) == [f"{cache.stem}.json", cache.name]
