"""Checking a data folder before anything is decoded or written: the layout, the classes, and an
image list in which every name is a readable file (symlink loops and broken links refused by path).
A class folder's images are taken at any depth (train/cat/2019/img.jpg), as torchvision's
ImageFolder takes them.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from collections import deque
from pathlib import Path
from typing import NamedTuple

from trainer.errors import DataError
from trainer.source_names import EXPECTED_LAYOUT

# What torchvision's ImageFolder takes (torchvision.datasets.folder.IMG_EXTENSIONS), all of which
# PIL decodes; written out, since listing a folder must not wait for torchvision to import
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class Listing(NamedTuple):
    classes: tuple[str, ...]
    train: list[tuple[str, int]]  # (path relative to the folder, label)
    val: list[tuple[str, int]]


def scan_folder(folder: Path) -> Listing:
    """The classes and labelled image files of train/ and val/; DataError names what is wrong."""
    try:
        files = {split: _split_files(folder, split) for split in ("train", "val")}
    except OSError as error:  # unreadable folders: permissions, a disk gone, a loop met mid-walk
        raise DataError(_unreadable(error.filename or folder, error)) from None
    only_train = sorted(set(files["train"]) - set(files["val"]))
    only_val = sorted(set(files["val"]) - set(files["train"]))
    if only_train or only_val:
        raise DataError(
            f"train/ and val/ in {folder} hold different classes: only in train: {only_train}, "
            f"only in val: {only_val}; every class needs a folder with images in both"
            f"{_lookalikes(only_train, only_val)}"
        )
    classes = tuple(sorted(files["train"]))
    _check_class_count(folder, classes, "train/ and val/")
    return Listing(
        classes,
        _labelled("train", classes, files["train"]),
        _labelled("val", classes, files["val"]),
    )


def scan_val(folder: Path) -> Listing:
    """The classes and labelled image files of val/ alone, its train list empty: scoring needs no
    more, and a user's own test set may have no train/ (or one holding anything)."""
    if not _is_dir(folder / "val"):  # the layout to name is val/'s alone: train/ is not needed
        raise DataError(f"{folder} has no val/ folder; expected val/<class>/<image files> in it")
    try:
        files = _class_files(folder / "val")
    except OSError as error:
        raise DataError(_unreadable(error.filename or folder, error)) from None
    classes = tuple(sorted(files))
    _check_class_count(folder, classes, "val/")
    return Listing(classes, [], _labelled("val", classes, files))


def _check_class_count(folder: Path, classes: tuple[str, ...], splits: str) -> None:
    if len(classes) < 2:
        # One class trains to 100% "accuracy" that means nothing. Two classes with an image each
        # also make the smallest training set a batch can be made of (BatchNorm needs 2 images).
        raise DataError(
            f"{folder} holds one class ({classes[0]}), but classification needs at least 2: "
            f"add a folder of images for each other class to {splits}"
        )


def _labelled(
    split: str, classes: tuple[str, ...], files: dict[str, list[str]]
) -> list[tuple[str, int]]:
    """(path relative to the folder, label) of each image, in label order."""
    return [
        (f"{split}/{name}/{file}", label)
        for label, name in enumerate(classes)
        for file in files[name]
    ]


def _lookalikes(only_train: list[str], only_val: list[str]) -> str:
    """Names of one class that print alike but differ: in case, or in how an accented letter is
    encoded (a copy from macOS writes é as e and a combining accent, NFD), shown escaped."""

    def key(name: str) -> str:
        return unicodedata.normalize("NFC", name).casefold()

    in_val = {key(name): name for name in only_val}
    pairs = [(name, in_val[key(name)]) for name in only_train if key(name) in in_val]
    if not pairs:
        return ""
    named = ", ".join(f"{ascii(train)} in train/ and {ascii(val)} in val/" for train, val in pairs)
    return (
        f"; {named} differ only in letter case or in how accents are encoded (Unicode NFC and "
        "NFD): rename one folder of each pair to match the other"
    )


def _split_files(folder: Path, split: str) -> dict[str, list[str]]:
    if not _is_dir(folder / split):
        raise DataError(f"{folder} has no {split}/ folder; expected {EXPECTED_LAYOUT} inside it")
    return _class_files(folder / split)


def _class_files(split_dir: Path) -> dict[str, list[str]]:
    """Image paths per class folder, relative to it and sorted; hidden entries (.DS_Store, ._
    copies) skipped at any depth."""
    class_dirs = sorted(
        path for path in split_dir.iterdir() if not path.name.startswith(".") and _is_dir(path)
    )
    if not class_dirs:
        raise DataError(
            f"{split_dir} holds no class folders; expected {split_dir}/<class>/<image files>"
        )
    files = {}
    for class_dir in class_dirs:
        names = sorted(_image_names(class_dir))
        if not names:
            raise DataError(
                f"class folder {class_dir} holds no images ({' '.join(IMAGE_EXTENSIONS)}); "
                # Removing this folder alone leaves the class in the other split, refused next
                f"add images, or remove class {class_dir.name!r} from both train/ and val/"
            )
        files[class_dir.name] = names
    return files


def _image_names(class_dir: Path) -> list[str]:
    """The image files under a class folder at any depth, as torchvision's ImageFolder takes them,
    as paths relative to it ("2019/img.jpg"). A broken link or an empty file is refused, not
    skipped: the data set must never be silently smaller than the folder looks."""
    seen = _ancestors(class_dir)  # (st_dev, st_ino) -> the path it was met at
    names = []
    pending = deque([(class_dir, "")])
    while pending:
        folder, prefix = pending.popleft()
        with os.scandir(folder) as entries:
            found_entries = list(entries)  # closed before any folder below is opened
        for entry in found_entries:
            if entry.name.startswith("."):  # a hidden folder's images too: ._ copies, .git
                continue
            path, relative = Path(entry.path), prefix + entry.name
            found = _stat(path)
            if found is not None and stat.S_ISDIR(found.st_mode):
                _refuse_repeat(path, found, seen)
                pending.append((path, relative + "/"))
            elif not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            elif found is None and entry.is_symlink():
                raise DataError(
                    f"{entry.path} is a link to {os.readlink(entry.path)}, which does not exist; "
                    "fix or remove the link"
                )
            elif found is not None and stat.S_ISREG(found.st_mode):
                if found.st_size == 0:
                    raise DataError(f"image {entry.path} is empty (0 bytes); replace or remove it")
                names.append(relative)
    return names


def _ancestors(class_dir: Path) -> dict[tuple[int, int], Path]:
    """The folders holding a class folder, both as named and where links lead: a link back to one
    (even to /) would be walked forever, or through the whole disk before meeting itself again."""
    chain = [class_dir, *class_dir.absolute().parents]
    real = class_dir.resolve()
    seen: dict[tuple[int, int], Path] = {}
    for path in [*chain, real, *real.parents]:
        found = _stat(path)
        if found is not None:
            seen.setdefault((found.st_dev, found.st_ino), path)
    return seen


def _refuse_repeat(path: Path, found: os.stat_result, seen: dict[tuple[int, int], Path]) -> None:
    """Each folder is listed once: one met again is a link back to a folder that holds it (a
    loop) or a second link to a folder already listed, whose images would count twice."""
    identity = (found.st_dev, found.st_ino)
    if identity in seen:
        link, other = path, seen[identity]
        if other.is_symlink() and not link.is_symlink():  # the link was met first
            link, other = other, link
        raise DataError(
            f"{link} leads to {other}, a folder already listed (a symlink loop, or a second link "
            "to one folder); remove the link, then run again"
        )
    seen[identity] = path


def _is_dir(path: Path) -> bool:
    found = _stat(path)
    return found is not None and stat.S_ISDIR(found.st_mode)


def _stat(path: Path) -> os.stat_result | None:
    """What `path` leads to, None when nothing; a symlink loop is an error naming it (os.path.isdir
    and isfile say False for one, which would drop a class or an image without a word)."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DataError(_unreadable(path, error)) from None


def _unreadable(path: str | Path, error: OSError) -> str:
    loop = " (a symlink loop)" if error.errno == errno.ELOOP else ""
    return f"cannot read {path}: {error.strerror}{loop}; fix or remove it, then run again"
