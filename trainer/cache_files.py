"""The image cache's files: each written atomically beside its manifest (what it was built from),
the caches of its folder's earlier states removed, and a disk too full for it only a warning; read
back only when whole and intact."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from trainer.checkpoint import write_atomically
from trainer.errors import os_error_in_chain
from trainer.files import check_checksums
from trainer.listing import Listing
from trainer.naming import named
from trainer.sources import one_line
from trainer.whole_files import remove_abandoned_temporaries

# The bytes of a data folder's name its cache's file names keep: with the side, the digest and a
# temporary file's suffix they stay far under the 255 bytes a file name may have, which a long
# folder name (or one of many non-ASCII letters) once broke after every image was decoded
NAME_BYTES = 100


def cache_prefix(folder: Path, side: int) -> str:
    """The start of the file names of `folder`'s caches at `side` px, before their digest."""
    name = folder.name
    while len(os.fsencode(name)) > NAME_BYTES:  # whole letters: no half of a UTF-8 sequence
        name = name[:-1]
    return f"{name}-{side}px-"


def write_cache(path: Path, tensors: dict[str, torch.Tensor], manifest: dict[str, Any]) -> None:
    """Write the cache, then its manifest; on a full disk neither, with a warning: the cache only
    spares the next run its decoding, and the images decoded now are worth more."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda file: torch.save(tensors, file))
        write_atomically(
            path.with_suffix(".json"), lambda file: file.write(json.dumps(manifest).encode())
        )
    except (OSError, RuntimeError) as error:  # torch's zip writer wraps the OSError
        full = _full_disk(error)
        if full is None:
            raise
        path.unlink(missing_ok=True)  # where its manifest was what failed: space is short
        size = tensors["train_images"].nbytes + tensors["val_images"].nbytes
        warnings.warn(
            f"image cache not written: no space in {path.parent} for its {size / 1e9:.3g} GB "
            f"({one_line(full)}); going on with the images decoded now, which the next run "
            f"decodes again (free space there, or point {named('cache_dir')} or "
            "$HPSEARCH_CACHE_DIR at a larger disk)",
            stacklevel=4,
        )


def _full_disk(error: BaseException | None) -> OSError | None:
    """The OSError saying the disk (or the user's quota) is full, wherever it is in the chain."""
    return os_error_in_chain(error, (errno.ENOSPC, errno.EDQUOT))


def remove_abandoned_writes(folder: Path) -> None:
    """Delete what writers killed mid-write (SIGKILL, the OOM killer: writing is when a decode
    holds the most memory) left in the cache folder: a hidden temporary file as large as the
    cache. Done on every load, as a cache read and never written again would keep it forever."""
    with contextlib.suppress(OSError):  # no folder yet, or one this process may only read
        remove_abandoned_temporaries(folder)


def remove_stale_caches(current: Path, folder: Path, side: int) -> None:
    """Delete caches of earlier states of this folder at this side; they can never match again.

    A cache whose manifest names another folder of the same name is left alone.
    """
    pattern = re.compile(re.escape(cache_prefix(folder, side)) + r"[0-9a-f]{16}\.(pt|json)")
    if not current.parent.is_dir():  # no cache written there yet
        return
    for path in current.parent.iterdir():
        if (
            pattern.fullmatch(path.name)
            and path.stem != current.stem
            and _cached_folder(path.with_suffix(".json")) in (str(folder), None)
        ):
            path.unlink(missing_ok=True)


def _cached_folder(manifest_path: Path) -> str | None:
    try:
        return json.loads(manifest_path.read_text())["folder"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def labels_of(files: list[tuple[str, int]]) -> torch.Tensor:
    return torch.tensor([label for _, label in files], dtype=torch.int64)


def read_cache(path: Path, listing: Listing, side: int) -> dict[str, torch.Tensor] | None:
    """The cache at `path` if it holds `listing`'s images at `side` px, intact; else None, and a
    warning that it is rebuilt."""
    try:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
        check_checksums(path)  # else images damaged on disk would train silently
        for split, files in (("train", listing.train), ("val", listing.val)):
            images, labels = tensors[f"{split}_images"], tensors[f"{split}_labels"]
            if images.dtype != torch.uint8 or images.shape != (len(files), 3, side, side):
                raise ValueError(
                    f"{split} images have shape {tuple(images.shape)} and dtype {images.dtype}"
                )
            if not torch.equal(labels, labels_of(files)):
                raise ValueError(f"{split} labels do not match the folder")
    # Whatever is wrong with the file, decoding again is always safe.
    except Exception as exc:  # noqa: BLE001
        warnings.warn(
            f"image cache {path} could not be read ({one_line(exc)}); rebuilding it", stacklevel=3
        )
        return None
    return tensors
