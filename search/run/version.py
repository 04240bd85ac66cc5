"""Which code produced a trial: the package version and, in a git checkout, the commit."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path


@functools.cache
def code_version() -> str:
    try:
        version = metadata.version("hpsearch")
    except metadata.PackageNotFoundError:
        version = "unknown"
    # The checkout's top holds search/, which holds run/, which holds this file
    commit = _git_commit(Path(__file__).resolve().parents[2])
    return f"{version}+{commit}" if commit else version


def _git_commit(folder: Path) -> str | None:
    """The commit checked out at `folder`, if `folder` is a checkout's top: an installed copy in
    a virtual environment inside another project's checkout would name that project's commit."""
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    top, _, commit = result.stdout.strip().partition("\n")
    return commit if commit and Path(top).resolve() == folder.resolve() else None
