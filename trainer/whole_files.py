"""A file replaced whole or not at all: written beside itself under a temporary name, synced, then
renamed over (a crash, a full disk or a size limit mid-write leaves the earlier file as it was).
Torch-free, so that commands that only read a study (`trials`, `export`) start quickly; the
checkpoints (trainer.checkpoint) and the results commands' files (search.results.output_file)
both write through it."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

# The names of the temporary files (and those mkstemp gave them before): .NAME.<8 chars>.tmp
TEMPORARY_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
# A temporary file no write has touched for this long belongs to a writer that died: a live writer's
# file grows with every write, so its mtime stays fresh (15 minutes also covers a slow final fsync
# and clocks a little apart on a shared mount). Age, not the writer's pid: checkpoint folders are
# shared by workers on other machines and in containers, whose pids mean nothing here.
ABANDONED_TEMPORARY_SECONDS = 15 * 60


def replace_whole(path: Path, write: Callable[[BinaryIO], Any], *, keep_mode: bool = False) -> None:
    """`write(file)` into a new file beside `path`, which then replaces it; `keep_mode`: with the
    earlier file's permissions, if there is one. On any failure the temporary file is removed."""
    handle, temporary = _new_temporary(path)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        if keep_mode and path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _new_temporary(path: Path) -> tuple[int, Path]:
    """A new file beside `path`, named as TEMPORARY_NAME knows them, with the mode any file this
    process writes gets (0o666 less the umask): mkstemp's 0o600 made every checkpoint, weights
    file and image cache unreadable to the rest of a team sharing a folder."""
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temporary
        except FileExistsError:  # another writer's, drawn by chance: draw again
            continue


def remove_abandoned_temporaries(
    folder: Path, *, older_than_seconds: float = ABANDONED_TEMPORARY_SECONDS
) -> list[Path]:
    """Delete the temporary files of interrupted writes in `folder` (named as TEMPORARY_NAME knows
    them) that no write has touched for `older_than_seconds` (0: whatever their age, where no
    live writer can own one); returns what was removed."""
    removed = []
    now = time.time()
    for entry in os.scandir(folder):
        if not TEMPORARY_NAME.fullmatch(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime >= older_than_seconds:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        # Best effort: another process may have removed it first, or own it; the write goes on.
        except OSError:
            continue
    return removed
