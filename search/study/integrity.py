"""A damaged SQLite file, named as such, with what to do.

A corrupted page of a study's SQLite file otherwise shows as Optuna's "invalid data in the commit,
e.g. exceeding max length" traceback when a read or write reaches it, or not at all when none does.
SQLite's `PRAGMA quick_check` walks every page of the file: a few tens of milliseconds for a study
of thousands of trials (27 ms for 3,000 trials of 20 epochs, a 21 MB file; 105 ms for 10,000,
69 MB), so it runs whenever a command opens an existing file (search.study.storage), when a worker
ends, and when a storage call on the file fails with a database error (search.study.resilience).
"""

from __future__ import annotations

import shlex
import sqlite3
from pathlib import Path

import sqlalchemy

from search.errors import StorageDamaged, error_chain
from trainer.naming import given

# Problems quick_check lists at most: the first names the damage, the count says how much more
QUICK_CHECK_ROWS = 10


def sqlite_file(parsed: sqlalchemy.URL) -> Path | None:
    """The file a SQLite URL names; None for other databases and in-memory SQLite."""
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def quick_check(path: Path) -> list[str]:
    """What `PRAGMA quick_check` finds wrong with the SQLite file at `path`; empty when nothing.

    Read only (a file is never made), in a read transaction of its own: in WAL mode it waits for
    no writer. A page too damaged to walk makes the check itself fail, with the reason."""
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
    except sqlite3.Error as error:  # it cannot even be opened: not ours to judge
        return [] if isinstance(error, sqlite3.OperationalError) else [str(error)]
    try:
        rows = connection.execute(f"PRAGMA quick_check({QUICK_CHECK_ROWS})").fetchall()
    except sqlite3.DatabaseError as error:
        return [str(error)]
    finally:
        connection.close()
    # Older SQLite heads its list with "*** in database main ***"
    return [row[0] for row in rows if row[0] != "ok" and not row[0].startswith("***")]


def check_intact(path: Path) -> None:
    """Raise StorageDamaged when the SQLite file at `path` fails its quick check."""
    found = quick_check(path)
    if found:
        raise damaged(path, found)


def damaged(path: Path, found: list[str]) -> StorageDamaged:
    """The one line that names the damage and what to do about it."""
    more = f", and {len(found) - 1} more problem(s)" if len(found) > 1 else ""
    return StorageDamaged(
        f"the SQLite file {path} is damaged (PRAGMA quick_check: {found[0]}{more}); stop every "
        "worker on it, then restore it from a backup, or salvage what it still holds: "
        f"`sqlite3 {shlex.quote(str(path))} .recover | sqlite3 salvaged.db` (with a sqlite3 "
        "that has no .recover: .dump, its closing ROLLBACK made COMMIT), and use "
        f"{given('storage', 'sqlite:///salvaged.db')}"
    )


def is_database_error(error: BaseException) -> bool:
    """Whether SQLite itself refused (somewhere down the chain Optuna and SQLAlchemy wrap it), as
    a damaged file makes it do; a broken constraint is a race between workers, not damage."""
    return any(
        isinstance(link, sqlite3.DatabaseError) and not isinstance(link, sqlite3.IntegrityError)
        for link in error_chain(error)
    )


SQLITE_READONLY = 8  # SQLite's primary result code; its extended codes keep it in the low byte


def is_read_only(error: BaseException) -> bool:
    """Whether SQLite refused a write to a file this process may only read (its permissions, an
    immutable file, a read-only mount), as sqlite3 reports it or SQLAlchemy wraps it: not damage."""
    driver_error = getattr(error, "orig", None) or error
    code = getattr(driver_error, "sqlite_errorcode", None)
    return (
        isinstance(driver_error, sqlite3.Error)
        and code is not None
        and code & 0xFF == SQLITE_READONLY
    )
