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
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

# The names of the temporary files (and those mkstemp gave them before): .NAME.<8 chars>.tmp
TEMPORARY_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


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
