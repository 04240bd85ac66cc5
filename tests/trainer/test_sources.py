"""Where the images come from: a .tar.gz extracted once per version of the archive, an Imagenette
download extracted the same way, and neither ever read half extracted, as a user would notice."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import pytest
import torchvision.datasets.utils

import trainer.data
from tests.helpers.images import make_image_folder
from trainer.archives import remove_abandoned_staging
from trainer.data import load_image_data
from trainer.errors import DataError
from trainer.listing import scan_folder
from trainer.naming import flags_named
from trainer.sources import resolve_data_dir

REPOSITORY = Path(__file__).parents[2]
CLASSES = ("class_0", "class_1", "class_2")


def make_archive(path: Path, *, top: str, classes: int = 3, seed: int = 0) -> Path:
    """A .tar.gz of a folder `top` holding train/ (4 images a class) and val/ (2 a class)."""
    made = path.with_name(f"{path.name}.made")
    shutil.rmtree(made, ignore_errors=True)
    folder = make_image_folder(
        made / top,
        classes=classes,
        train_per_class=4,
        val_per_class=2,
        seed=seed,
        odd_formats=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=top)
    return path


def contents(folder: Path) -> tuple[tuple[str, ...], int, int]:
    """The classes and how many train and val images a data folder holds."""
    listing = scan_folder(folder)
    return listing.classes, len(listing.train), len(listing.val)


def hidden(root: Path) -> list[str]:
    return sorted(name for name in os.listdir(root) if name.startswith("."))


def resolve(data: str | Path, root: Path) -> Path:
    return resolve_data_dir(data, data_root=root, progress=False)


def serving(archive: Path):
    """torchvision's download_url as it behaves here without a network: the archive lands in root
    under the URL's file name."""

    def download_url(url, root, filename=None, md5=None, *args, **kwargs):
        shutil.copyfile(archive, Path(root) / (filename or Path(url).name))

    return download_url


def offline(*args, **kwargs):
    raise urllib.error.URLError("no network")


@dataclass(frozen=True)
class Source:
    data: str  # what a user passes: an archive's path, or an Imagenette name
    archive: Path  # the .tar.gz behind it: the user's, or the one the download serves


@pytest.fixture(params=["archive", "imagenette"])
def source(request, tmp_path, monkeypatch) -> Source:
    if request.param == "archive":
        archive = make_archive(tmp_path / "mine" / "tiny.tar.gz", top="tiny")
        return Source(str(archive), archive)
    archive = make_archive(tmp_path / "served" / "imagenette2-160.tgz", top="imagenette2-160")
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", serving(archive))
    return Source("imagenette-160", archive)


# --- an archive of the user's ---------------------------------------------------------------------


def test_a_tar_gz_archive_is_extracted_once_and_loads(tmp_path, cache_dir, monkeypatch, caplog):
    archive = make_archive(tmp_path / "tiny.tar.gz", top="tiny", classes=2)
    root = tmp_path / "root"
    data = load_image_data(archive, 32, cache_dir=cache_dir, data_root=root, progress=False)
    [extracted] = root.iterdir()  # no staging folder left behind
    assert extracted.name.startswith("tiny-") and data.source == str(extracted / "tiny")
    assert (len(data.train), len(data.val), data.classes) == (8, 4, ("class_0", "class_1"))
    assert f"extracted {archive} into {extracted}" in caplog.text, "said once"
    caplog.clear()
    monkeypatch.setattr(trainer.data, "_LOADED", {})
    monkeypatch.setattr(
        tarfile, "open", lambda *args, **kwargs: pytest.fail("extracted the archive twice")
    )
    assert resolve(archive, root) == extracted / "tiny"
    assert "extracted" not in caplog.text


def test_archives_of_one_name_in_two_folders_are_each_read(tmp_path, caplog):
    first = make_archive(tmp_path / "a" / "data.tar.gz", top="data", classes=2)
    second = make_archive(tmp_path / "b" / "data.tar.gz", top="data", classes=3)
    root = tmp_path / "root"
    assert contents(resolve(first, root))[0] == ("class_0", "class_1")
    assert contents(resolve(second, root))[0] == CLASSES
    assert contents(resolve(first, root))[0] == ("class_0", "class_1")
    said = caplog.messages
    assert len(said) == 2 and "also holds data-" in said[1], "the other extraction is named"


def test_an_archive_replaced_by_a_new_version_is_extracted_again(tmp_path):
    archive = make_archive(tmp_path / "data.tar.gz", top="data", classes=2)
    root = tmp_path / "root"
    assert contents(resolve(archive, root))[0] == ("class_0", "class_1")
    make_archive(archive, top="data", classes=3, seed=1)
    assert contents(resolve(archive, root)) == (CLASSES, 12, 6)


def break_crc(data: bytearray) -> None:
    data[-8] ^= 0xFF  # the stored CRC-32: every byte of the tar still reads as it was written


def break_deflate(data: bytearray) -> None:
    for index in range(len(data) // 10, len(data) // 10 + 64):
        data[index] ^= 0x5A


def cut_in_half(data: bytearray) -> None:
    del data[len(data) // 2 :]


@pytest.mark.parametrize("damage", [break_crc, break_deflate, cut_in_half])
def test_a_damaged_archive_is_one_line_naming_it_and_leaves_nothing(tmp_path, damage):
    archive = make_archive(tmp_path / "tiny.tar.gz", top="tiny")
    data = bytearray(archive.read_bytes())
    damage(data)
    archive.write_bytes(bytes(data))
    root = tmp_path / "root"
    with pytest.raises(DataError) as caught:
        resolve(archive, root)
    message = str(caught.value)
    assert message.startswith(f"could not extract {archive} into {root}/tiny-")
    assert "complete, undamaged .tar.gz" in message and "\n" not in message
    assert not root.exists()  # no folder a later run would read, no staging, no empty root


def test_an_archive_without_val_says_so_and_leaves_no_extraction_behind(tmp_path):
    # It stayed extracted in the data root for good, and the error said "holds 0"
    made = make_image_folder(tmp_path / "made" / "tiny", train_per_class=1, val_per_class=1)
    shutil.rmtree(made / "val")
    archive = tmp_path / "noval.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(made, arcname="tiny")
    root = tmp_path / "root"
    with pytest.raises(DataError) as caught:
        resolve(archive, root)
    assert str(caught.value).startswith(
        f"archive {archive} should hold one folder with train/ and val/, but holds none: it has "
        "train/ but no val/ in tiny; expected "
    )
    assert list(root.iterdir()) == []


# --- Imagenette -----------------------------------------------------------------------------------


def test_a_failed_imagenette_download_says_where_to_put_the_data(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    with pytest.raises(DataError) as caught:
        resolve("imagenette-160", tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "imagenette2-160") in message and "imagenette2-160.tgz" in message
    assert "pass data='PATH' pointing at" in message  # a Python caller's keyword
    assert "no network" in message and "\n" not in message
    as_flags = flags_named(lambda keyword: f"--{keyword}")  # as `hpsearch` names it
    with as_flags, pytest.raises(DataError, match="pass --data PATH pointing at"):
        resolve("imagenette-160", tmp_path)


def test_an_extracted_imagenette_is_used_without_downloading(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    make_image_folder(
        tmp_path / "imagenette2-160", train_per_class=2, val_per_class=1, odd_formats=False
    )
    data = load_image_data("imagenette-160", 32, cache_dir=cache_dir, data_root=tmp_path)
    assert data.source == str(tmp_path / "imagenette2-160") and len(data.train) == 6


def test_an_imagenette_folder_without_train_and_val_is_named_for_deletion(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    # What torchvision, extracting straight into the data root, left when it was interrupted
    make_image_folder(tmp_path / "imagenette2-160", val_per_class=0, odd_formats=False)
    shutil.rmtree(tmp_path / "imagenette2-160" / "val")
    with pytest.raises(DataError) as caught:
        resolve("imagenette-160", tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'imagenette2-160'} holds no train/ and val/")
    assert message.endswith("delete it and imagenette-160 is downloaded again")


def test_a_downloaded_imagenette_is_extracted_in_place_of_its_archive(tmp_path, monkeypatch):
    served = make_archive(tmp_path / "served" / "imagenette2-160.tgz", top="imagenette2-160")
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", serving(served))
    root = tmp_path / "root"
    assert resolve("imagenette-160", root) == root / "imagenette2-160"
    assert os.listdir(root) == ["imagenette2-160"]  # nor the archive, nor a staging folder
    assert contents(root / "imagenette2-160") == (CLASSES, 12, 6)
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    assert resolve("imagenette-160", root) == root / "imagenette2-160"


# --- faults met for real: a full disk, a killed extraction ----------------------------------------


def test_a_disk_too_full_to_extract_on_leaves_nothing_and_a_later_run_extracts(
    tmp_path, source, small_disks
):
    # Room for the archive (30 kB), not for its 18 images (4 kB each on a tmpfs)
    root = small_disks.mount(tmp_path / "root", "64k")
    with pytest.raises(DataError) as caught:
        resolve(source.data, root)
    message = str(caught.value)
    assert message.startswith(f"no space left on {root} to extract ") and "\n" not in message
    assert "HPSEARCH_DATA_ROOT" in message
    # Nothing a later run would read as extracted; a download's archive is kept, checked by its md5
    assert os.listdir(root) == ([] if source.data.endswith(".tar.gz") else ["imagenette2-160.tgz"])
    small_disks.grow(root, "4m")
    assert contents(resolve(source.data, root)) == (CLASSES, 12, 6)
    assert hidden(root) == [] and not (root / "imagenette2-160.tgz").exists()


# Runs resolve_data_dir(argv[1]) in a data root (argv[3]) with its first image extracted for good,
# then waits to be killed, having said so (touching argv[4]); an Imagenette download serves argv[2].
PAUSED_EXTRACTION = """
import shutil, sys, tarfile, time
from pathlib import Path
import torchvision.datasets.utils
data, served, root, paused = sys.argv[1:]
def download_url(url, root, filename=None, md5=None, *args, **kwargs):
    shutil.copyfile(served, Path(root) / (filename or Path(url).name))
torchvision.datasets.utils.download_url = download_url
extract_file = tarfile.TarFile.makefile
def makefile(self, tarinfo, targetpath):
    extract_file(self, tarinfo, targetpath)
    Path(paused).touch()
    time.sleep(600)
tarfile.TarFile.makefile = makefile
from trainer.sources import resolve_data_dir
resolve_data_dir(data, data_root=Path(root), progress=False)
"""


def start_paused_extraction(source: Source, root: Path, paused: Path) -> subprocess.Popen:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PAUSED_EXTRACTION,
            source.data,
            *map(str, (source.archive, root, paused)),
        ],
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not paused.exists():
        if child.poll() is not None:
            pytest.fail(f"the extraction ended before it was paused: {child.stderr.read()}")
        if time.monotonic() > deadline:
            child.kill()
            child.wait()
            pytest.fail("the extraction did not reach its first image in 120 s")
        time.sleep(0.05)
    return child


def test_a_killed_extraction_is_cleaned_up_by_the_next_run_and_a_running_one_is_not(
    tmp_path, source
):
    root = tmp_path / "root"
    child = start_paused_extraction(source, root, tmp_path / "paused")
    try:
        staging = hidden(root)
        assert staging, "the extraction works in a hidden folder"
        # Another run extracting into the same root meanwhile leaves the running extraction alone
        other = make_archive(tmp_path / "other.tar.gz", top="other")
        assert contents(resolve(other, root)) == (CLASSES, 12, 6)
        assert hidden(root) == staging
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
    assert contents(resolve(source.data, root)) == (CLASSES, 12, 6)
    assert hidden(root) == [], "the killed extraction's staging folder is removed"


def test_a_staging_folder_without_its_lock_is_removed_only_once_old(tmp_path):
    # What an extraction killed between making its staging folder and its lock file leaves, and
    # what one making them now shows for a moment
    root = tmp_path / "root"
    killed, starting = (
        root / ".tiny-0123abcd4567.extracting-k1ll3d00",
        root / ".b.extracting-n0w0n0w0",
    )
    for staging in (killed, starting):
        (staging / "content").mkdir(parents=True)
    an_hour_ago = time.time() - 3600
    os.utime(killed, (an_hour_ago, an_hour_ago))
    assert remove_abandoned_staging(root) == [killed]
    assert hidden(root) == [starting.name]
