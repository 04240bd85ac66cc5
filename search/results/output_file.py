"""The files the results commands write (a report, a settings file and its weights, a CSV table, a
confusion matrix), each replaced whole or not at all.

Writing over the file itself empties it first: a full disk or a size limit met halfway left a
truncated page or table where a good one was, and a traceback. Here the new file is written
beside it and renamed over it once complete (trainer.whole_files, as checkpoints are), so the
earlier file stays until then, and a write that fails is one line that names the file and says it
was kept.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from search.errors import ConfigError
from search.study.integrity import SQLITE_HEADER
from search.studyfile import holds_a_study
from trainer.whole_files import replace_whole


def check_not_data(path: Path, what: str) -> None:
    """Refuse to write a page, table or settings file over a study's SQLite storage, a weights
    file or a study file: `-o studies.csv` naming the storage itself, `evaluate W.pt -o W.pt` or
    `export -o quick.toml` would replace what the search made, or what defines it, with text."""
    kind = _data_kind(Path(path))
    if kind is not None:
        raise ConfigError(
            f"{what} {path} is {kind}; hpsearch does not write over it: name another file"
        )


def _data_kind(path: Path) -> str | None:
    if not path.is_file():  # a named pipe or /dev/stdout is never read: opening one may block
        return None
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except OSError:  # missing, a folder, unreadable: nothing of ours to lose by its contents
        return None
    if head == SQLITE_HEADER:
        return "a SQLite database (a study storage)"
    if head.startswith(b"PK") and _is_torch_file(path):
        return "a weights or checkpoint file (torch.save)"
    if holds_a_study(path):
        return "a study file (it has a [study] table)"
    return None


def _is_torch_file(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


PAGE_SUFFIXES = (".html", ".htm")


def check_page_name(path: Path, what: str, page: str, hint: str = "") -> None:
    """`page` is one HTML page: a name of another format's (`-o results.csv`, `-o notes.md`,
    `-o quick.toml`) would hold HTML under it, over whatever was there; nor is a study's data ever
    written over. A name with no suffix is taken as it is (`/dev/stdout`, `report`)."""
    check_not_data(path, what)
    suffix = Path(path).suffix.lower()
    if suffix and suffix not in PAGE_SUFFIXES:
        raise ConfigError(f"{what} {path}: {page} is one HTML page; name a .html file{hint}")


def write_text(path: Path, text: str, what: str) -> None:
    """Write `text` (UTF-8) to `path`, never over a storage, weights or study file
    (`check_not_data`); `what` names it in an error (-o, path)."""
    check_not_data(path, what)
    write_file(path, lambda file: file.write(text.encode("utf-8")), what)


def copy_file(source: Path, path: Path, what: str) -> None:
    """Copy the file `source` to `path`."""
    with source.open("rb") as original:
        write_file(path, lambda file: shutil.copyfileobj(original, file), what)


def write_file(path: Path, write: Callable[[BinaryIO], object], what: str) -> None:
    """`write(file)` into a new file that then replaces `path` (a link's target, if it is one),
    keeping the earlier file's permissions; a ConfigError naming `path` if it cannot be written."""
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():
        # /dev/null, /dev/stdout, a named pipe: written through, never replaced by a file
        try:
            with target.open("wb") as file:
                write(file)
        except OSError as error:
            raise _unwritten(path, what, error, "") from None
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        replace_whole(target, write, keep_mode=True)
    except OSError as error:
        kept = "the earlier file is kept" if target.exists() else "nothing was written"
        raise _unwritten(path, what, error, f"; {kept}") from None


def _unwritten(path: Path, what: str, error: OSError, tail: str) -> ConfigError:
    return ConfigError(f"{what} {path} could not be written: {error.strerror or error}{tail}")
