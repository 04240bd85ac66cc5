"""Folders named after studies and trials, kept inside the folder meant for them.

A study name comes from a study file or from the shared database, so whoever can write either
could name a study `../../.ssh`; a path built from it must still land under its root.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from search.errors import ConfigError

UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def slug(name: str) -> str:
    """`name` with every character outside [A-Za-z0-9._-] replaced by `_`.

    A name that had to change gets a short hash of the original, so that `a b` and `a_b`,
    two different studies, never share a folder.
    """
    cleaned = UNSAFE_CHARS.sub("_", name)
    if cleaned == name:
        return cleaned
    return f"{cleaned}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def safe_child(root: str | Path, name: str) -> Path:
    """The folder `root/slug(name)`, refused if it would not be a direct child of `root`: a
    ConfigError (a ValueError too), which a command prints as one line."""
    folder_name = slug(name)
    if folder_name in ("", ".", ".."):
        raise ConfigError(
            f"name {name!r} makes no folder name; use letters, digits, '.', '_' or '-'"
        )
    resolved_root = Path(root).resolve()
    child = (resolved_root / folder_name).resolve()
    if child.parent != resolved_root:  # a symlink planted under root could still point elsewhere
        # Also a user's own link, made to move a study's files to a larger disk
        raise ConfigError(
            f"folder {resolved_root / folder_name} for name {name!r} is a link to {child}, outside "
            f"{resolved_root}; move the folder itself back there, or move all of {resolved_root} "
            "to the other disk and point the checkpoint folder at it"
        )
    return child
