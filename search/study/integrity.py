"""A damaged SQLite file, or one on a full disk, named as such, with what to do.

A corrupted page of a study's SQLite file otherwise shows as Optuna's "invalid data in the commit,
e.g. exceeding max length" traceback when a read or write reaches it, or not at all when none does.
SQLite's `PRAGMA quick_check` walks every page of the file: a few tens of milliseconds for a study
of thousands of trials (27 ms for 3,000 trials of 20 epochs, a 21 MB file; 105 ms for 10,000,
69 MB), so it runs whenever a command opens an existing file (search.study.storage), when a worker
ends, and when a storage call on the file fails with a database error (search.study.resilience).
A file whose disk is full is no damage: SQLite refuses to write it ("database or disk is full"),
or to make the index it keeps beside a WAL file ("disk I/O error"), and says so in one line too.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import sqlite3
from pathlib import Path

import sqlalchemy

from search.errors import HpsearchError, StorageDamaged, StorageError, error_chain
from search.locations import sqlite_file
from search.study.sqlite_paths import unwritable_folder
from trainer.naming import given, named

logger = logging.getLogger("hpsearch.storage")
_SAID_EMPTY: set[Path] = set()  # the empty files this process said so of
# Problems quick_check lists at most: the first names the damage, the count says how much more
QUICK_CHECK_ROWS = 10


def quick_check(path: Path) -> list[str]:
    """What `PRAGMA quick_check` finds wrong with the SQLite file at `path`; empty when nothing.

    Read only (a file is never made), in a read transaction of its own: in WAL mode it waits for
    no writer. A page too damaged to walk makes the check itself fail, with the reason; a disk too
    full for SQLite to open the file is StorageError (`full_disk`)."""
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
    except sqlite3.Error as error:  # it cannot even be opened: not ours to judge
        return [] if isinstance(error, sqlite3.OperationalError) else [str(error)]
    try:
        rows = connection.execute(f"PRAGMA quick_check({QUICK_CHECK_ROWS})").fetchall()
    except sqlite3.DatabaseError as error:
        full = _full_disk_at(path, error)
        if full is not None:
            raise full from None
        unwritable = unwritable_folder(path) if _code(error) == SQLITE_CANTOPEN else None
        if unwritable is not None:
            raise unwritable from None
        return [str(error)]
    finally:
        connection.close()
    # Older SQLite heads its list with "*** in database main ***"
    return [row[0] for row in rows if row[0] != "ok" and not row[0].startswith("***")]


def sqlite_trouble(url: sqlalchemy.URL, error: BaseException) -> HpsearchError | None:
    """For a database error (not an outage) on the SQLite file of `url`: its full disk, else the
    damage its quick check finds, if any, to be raised instead of the error it caused."""
    path = sqlite_file(url)
    if path is None or not is_database_error(error):
        return None
    full = _full_disk_at(path, error)
    if full is not None:
        return full
    found = quick_check(path)
    return damaged(path, found) if found else None


def check_intact(path: Path, *, creating: bool = True) -> None:
    """Raise StorageDamaged when the SQLite file at `path` fails its quick check. An empty file
    passes it (SQLite makes a new database in it), but one that held studies and was cut to
    nothing (`> studies.db`, a copy that failed) would then silently start them again: said, by
    a command `creating` the storage (one that only reads says it holds no studies instead)."""
    if path.stat().st_size == 0:
        if not creating or path.resolve() in _SAID_EMPTY:  # made once, opened more than once
            return
        _SAID_EMPTY.add(path.resolve())
        logger.warning(
            f"storage file {path} is empty (0 bytes): a new storage is made in it; if it held "
            "studies, it was cut short: stop, and restore it from a backup"
        )
        return
    found = quick_check(path)
    if found:
        raise damaged(path, found)
    if creating:
        _refuse_another_programs(path)


# Optuna's tables, by name: any one of them makes a file Optuna's (its first run makes them one by
# one, and another worker may look in between)
OPTUNA_TABLES = frozenset(
    {
        "alembic_version", "studies", "study_directions", "study_system_attributes",
        "study_user_attributes", "trial_heartbeats", "trial_intermediate_values", "trial_params",
        "trial_system_attributes", "trial_user_attributes", "trial_values", "trials",
        "version_info",
    }
)  # fmt: skip


def _refuse_another_programs(path: Path) -> None:
    """A SQLite file that holds tables, none of them Optuna's, is another program's: `run
    --storage sqlite:///app.db` wrote Optuna's tables into it without a word."""
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = sorted(name for (name,) in rows)
        finally:
            connection.close()
    except sqlite3.Error:  # not for this check to judge: opening it says what is wrong
        return
    if tables and not OPTUNA_TABLES.intersection(tables):
        shown = ", ".join(tables[:4]) + (", ..." if len(tables) > 4 else "")
        raise StorageError(
            f"SQLite file {path} holds another program's tables ({shown}) and no study: hpsearch "
            f"makes its storage only in a new file or one of its own; give {named('storage')} "
            "another file"
        )


# The first bytes of every SQLite database file
SQLITE_HEADER = b"SQLite format 3\x00"


def damaged(path: Path, found: list[str]) -> StorageDamaged:
    """The one line that names the damage and what to do about it; for a file that does not even
    begin as SQLite's, most often a storage URL naming the wrong file (a study file, a CSV), that
    first: a salvage recovers nothing from it."""
    if not _begins_as_sqlite(path):
        return StorageDamaged(
            f"{path} is not a SQLite database (it does not begin with SQLite's header: "
            f"{found[0]}): check that {named('storage')} names the study's storage; a storage "
            "damaged at its start is restored from a backup"
        )
    more = f", and {len(found) - 1} more problem(s)" if len(found) > 1 else ""
    return StorageDamaged(
        f"the SQLite file {path} is damaged (PRAGMA quick_check: {found[0]}{more}); stop every "
        "worker on it, then restore it from a backup, or salvage what it still holds: "
        f"`sqlite3 {shlex.quote(str(path))} .recover | sqlite3 salvaged.db` (with a sqlite3 "
        "that has no .recover: .dump, its closing ROLLBACK made COMMIT), and use "
        f"{given('storage', 'sqlite:///salvaged.db')}"
    )


def _begins_as_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:  # not ours to judge: the quick check's own finding stands
        return True


SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN = 10, 13, 14  # SQLite's primary result codes
# Free space under which SQLite's disk I/O error is a full disk: the index it makes beside a WAL
# file takes 32 KiB, and it fails to make it with SQLITE_IOERR_SHMSIZE, not SQLITE_FULL
FULL_BELOW_BYTES = 1 << 20


def full_disk(url: sqlalchemy.URL, error: BaseException) -> StorageError | None:
    """For SQLite refusing a write (somewhere down the chain Optuna and SQLAlchemy wrap it) to the
    file of `url` because its disk is full: the one line that says so and what to do. Without it,
    a worker died with Optuna's "invalid data in the commit" traceback, and a full disk at start
    made the file look damaged (its quick check fails with "disk I/O error"). None otherwise."""
    path = sqlite_file(url)
    return None if path is None else _full_disk_at(path, error)


def _full_disk_at(path: Path, error: BaseException) -> StorageError | None:
    driver_error = next((e for e in error_chain(error) if isinstance(e, sqlite3.Error)), None)
    code = None if driver_error is None else _code(driver_error)
    if code is None:
        return None
    free = _free_bytes(path)
    io_error_for_lack_of_space = code == SQLITE_IOERR and free < FULL_BELOW_BYTES
    if code != SQLITE_FULL and not io_error_for_lack_of_space:
        return None
    return StorageError(
        f"the disk of SQLite storage {path} is full ({driver_error}; {free // 1024} kB free "
        f"in {path.parent}): free space on that disk, then run again; a trial that was "
        "running is resumed from its last checkpoint"
    )


def _code(error: sqlite3.Error) -> int | None:
    """SQLite's primary result code of the error, its extended code's low byte."""
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(path.parent).free
    except OSError:  # the folder is gone: no evidence of a full disk
        return FULL_BELOW_BYTES


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
    return isinstance(driver_error, sqlite3.Error) and _code(driver_error) == SQLITE_READONLY


def use_write_ahead_log(engine: sqlalchemy.Engine) -> None:
    """Put the SQLite file of `engine` in WAL mode, which lets readers (the progress line, status,
    the dashboard) run while a worker writes; a property of the file, so once is enough."""
    with engine.connect() as connection:
        try:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        except sqlalchemy.exc.OperationalError as error:
            # A file this process may only read keeps its journal: reading needs no WAL, and a
            # command that writes is refused before it does (search.study.writable)
            if not is_read_only(error):
                raise
