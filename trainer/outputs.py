"""Where a command will write, checked before it does any work: a file to write must not be a
folder, a folder to write into must not be a file, and the folder that will hold either must be
writable. Without these checks a command decodes, trains or draws first and then meets the path
as an IsADirectoryError or FileExistsError. Folders that do not exist yet are fine: they are made
when the output is written, as every command does for its outputs."""

from __future__ import annotations

import os
from pathlib import Path

from trainer.errors import ConfigError


def check_output_file(path: Path, what: str, example: str) -> None:
    """`path` can be written as a file; `what` names it for the user ("-o"), `example` is a file
    name to suggest when `path` is a folder ("report.html")."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"{what} {path} is a folder; name a file to write, such as {path / example}"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{what} {path} is not writable; name a file you may write")
    _check_can_make(path.parent, what, path)


def check_output_folder(path: Path, what: str) -> None:
    """`path` is a folder, or can be made one, that files can be written into."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a folder; name a folder to write into")
    _check_can_make(path, what, path)


def _check_can_make(folder: Path, what: str, path: Path) -> None:
    """The folder exists and is writable, or its nearest existing ancestor is a writable folder."""
    existing = next((parent for parent in (folder, *folder.parents) if parent.exists()), Path("."))
    if not existing.is_dir():
        raise ConfigError(
            f"{what} {path} cannot be written: {existing} is a file, not a folder; "
            "name a path in a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{what} {path} cannot be written: folder {existing} is not writable; "
            "name a path in a folder you may write"
        )
