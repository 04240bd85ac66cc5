"""The image cache's files: each written atomically beside its manifest (what it was built from),
the caches of its folder's earlier states removed, and a disk too full for it only a warning."""

from __future__ import annotations

import errno
import json
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from trainer.checkpoint import write_atomically
from trainer.naming import named
from trainer.sources import one_line


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
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return error
        error = error.__cause__ or error.__context__
    return None


def remove_stale_caches(current: Path, folder: Path, side: int) -> None:
    """Delete caches of earlier states of this folder at this side; they can never match again.

    A cache whose manifest names another folder of the same name is left alone.
    """
    pattern = re.compile(re.escape(f"{folder.name}-{side}px-") + r"[0-9a-f]{16}\.(pt|json)")
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
