"""The command line in-process, as the tests of user-facing behaviour call it, and what a command
left on disk."""

from __future__ import annotations

from pathlib import Path

from search.cli import main

# Files SQLite keeps beside an open database it did not create; they go when it closes
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`hpsearch ARGV` in this process: (exit status, standard output, standard error)."""
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def listing(root: Path) -> set[str]:
    """Every path under root, relative, but SQLite's passing side files: what a command wrote."""
    paths = {str(path.relative_to(root)) for path in root.rglob("*")}
    return {path for path in paths if not path.endswith(SQLITE_SIDE_FILES)}
