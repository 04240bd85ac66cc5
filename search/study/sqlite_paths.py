"""A SQLite storage's path, checked before the file is opened: SQLite itself answers a path it
cannot use with "unable to open database file", which said nothing of why, and which hpsearch
reported as a server that cannot be reached.

`check_sqlite_url` runs for every command (search.study.storage.check_storage_url), without
touching the disk beyond a look at the path; `check_sqlite_creatable` before a command makes a new
file; `unwritable_folder` names why a file that exists cannot be opened, where that is why
(search.study.integrity's quick check is the first to open it).
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy

from search import locations
from search.errors import StorageError
from search.locations import sqlite_file
from search.url_secrets import masked
from trainer.naming import named


def check_sqlite_url(parsed: sqlalchemy.URL, url: str) -> None:
    """A file (not a folder), in a folder that exists: SQLite reads sqlite://name as a host and
    opens an in-memory database, which no other process sees and which is gone when the command
    ends."""
    if parsed.host:
        path = "/".join(part for part in (parsed.host, parsed.database) if part)
        raise StorageError(
            f"SQLite storage {masked(url)!r} names {parsed.host!r} as a host: a SQLite file takes "
            f"three slashes for a relative path, four for an absolute one: sqlite:///{path} or "
            f"sqlite:////{path}"
        )
    if _in_memory(parsed):
        raise StorageError(
            f"storage {masked(url)!r} is an in-memory SQLite database, which holds no study "
            "once the command ends and which no worker process shares: name a file, e.g. "
            f"{locations.DEFAULT_STORAGE}"
        )
    _check_sqlite_folder(parsed, url)


def _in_memory(parsed: sqlalchemy.URL) -> bool:
    # :memory:, nothing (sqlite://), or SQLite's URI forms (?uri=true): file::memory:, mode=memory
    database = parsed.database or ""
    return (
        database in ("", ":memory:")
        or database.startswith("file::memory:")
        or parsed.query.get("mode") == "memory"
    )


def _check_sqlite_folder(parsed: sqlalchemy.URL, url: str) -> None:
    database = sqlite_file(parsed)
    if database is not None and not database.parent.is_dir():
        raise StorageError(
            f"the folder of SQLite storage {masked(url)!r} does not exist: {database.parent}; "
            "create it or fix the path"
        )
    if database is not None and database.is_dir():
        raise StorageError(
            f"SQLite storage {masked(url)!r} names a folder, {database}: name a file in it, e.g. "
            f"sqlite:///{database / 'hpsearch.db'}"
        )


def check_sqlite_creatable(parsed: sqlalchemy.URL) -> None:
    """A SQLite file that does not exist yet is made in a folder this process may write (its
    journal goes beside it too)."""
    database = sqlite_file(parsed)
    if database is None or database.exists() or os.access(database.parent, os.W_OK):
        return
    raise StorageError(
        f"SQLite storage {database} cannot be made: its folder {database.parent} cannot be "
        f"written here (read-only, or another user's); give {named('storage')} a file in a "
        "folder you can write"
    )


def unwritable_folder(path: Path) -> StorageError | None:
    """For a SQLite file that cannot be opened ("unable to open database file"): the folder this
    process may not write, if that is why. SQLite reads a file in WAL mode, as hpsearch keeps every
    storage, through an index it makes beside it (NAME-shm), and cannot make it there."""
    if os.access(path.parent, os.W_OK):
        return None
    return StorageError(
        f"SQLite storage {path} cannot be read here: its folder {path.parent} cannot be written, "
        f"and SQLite reads a file in WAL mode through an index it makes beside it "
        f"({path.name}-shm); copy the file to a folder you can write, or make this one writable"
    )
