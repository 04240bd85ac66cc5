"""The files the results commands write (a report, a settings file and its weights, a CSV table, a
confusion matrix), each replaced whole or not at all.

Writing over the file itself empties it first: a full disk or a size limit met halfway left a
truncated page or table where a good one was, and a traceback. Here the new file is written
beside it and renamed over it once complete, so the earlier file stays until then, and a write
that fails is one line that names the file and says it was kept. (torch-free, unlike the
trainer's `write_atomically`, so that `trials` and `export` stay quick to start.)
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from search.errors import ConfigError


def write_text(path: Path, text: str, what: str) -> None:
    """Write `text` (UTF-8) to `path`; `what` names it in an error (-o, path)."""
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
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # 0o666 less the umask, as a file opened for writing gets; an earlier file's mode below
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        if target.exists():
            shutil.copymode(target, temporary)
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        kept = "the earlier file is kept" if target.exists() else "nothing was written"
        raise _unwritten(path, what, error, f"; {kept}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _unwritten(path: Path, what: str, error: OSError, tail: str) -> ConfigError:
    return ConfigError(f"{what} {path} could not be written: {error.strerror or error}{tail}")
