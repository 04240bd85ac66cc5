"""The trial budget, exact when workers start at one moment: a worker counts the trials taken and
starts a new one under a lock that every worker of the study takes, so two workers that find the
budget's last trial free cannot both start it.

The lock is the database's own where it has one (PostgreSQL's advisory locks, MySQL's GET_LOCK:
both freed when the holder's connection ends, a killed worker's too), and a file lock for a
SQLite file, whose workers share a machine. Behind the gRPC proxy no lock reaches the database,
and the count is as exact as the moment allows: two workers starting at once may pass the budget
by a trial, as without a lock. A lock that cannot be had within LOCK_WAIT_SECONDS (its server
down, its holder stuck) is done without, for the same outcome, never a stalled worker; a follow-up
of a trial is queued under it `through_outages` (search.study.orphans), and a duplicate that
slips through is closed unrun (orphans.close_duplicates).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.pool import NullPool

from search import attrs
from search.study import promotion
from search.study.recorded import budget
from search.study.resilience import (
    call_with_retries,
    is_connection_error,
    log_lost_connections_in_one_line,
)
from search.study.storage import check_storage_url

LOCK_WAIT_SECONDS = 30  # a holder counts and starts one trial: milliseconds, seconds in an outage


class BudgetLock:
    """`with lock.held():` around counting the trials taken and starting a new one."""

    def __init__(self, url: str, study_name: str) -> None:
        self.url = check_storage_url(url)
        # MySQL's lock names are the server's, not a database's: the database is part of the name
        study = f"{self.url.database} {study_name}"
        self.name = "hpsearch-budget-" + hashlib.sha256(study.encode()).hexdigest()[:40]
        self.backend = self.url.get_backend_name()
        # The database's locks belong to a connection of their own, not one of Optuna's pool
        self._engine = (
            sqlalchemy.create_engine(self.url, poolclass=NullPool)
            if self.backend in ("postgresql", "mysql")
            else None
        )
        if self._engine is not None:
            log_lost_connections_in_one_line(self._engine)

    @contextlib.contextmanager
    def held(self, *, through_outages: bool = False) -> Iterator[None]:
        """`through_outages`: a database's lock is waited for while its server is down, as a
        storage call waits (search.study.resilience), not done without: two workers that queue a
        trial's follow-up in one outage would queue two, which train one checkpoint at once."""
        if self.backend == "sqlite" and self.url.database:
            with _file_lock(self.url.database, self.name):
                yield
        elif self._engine is not None:
            with self._database_lock(through_outages):
                yield
        else:
            yield

    @contextlib.contextmanager
    def _database_lock(self, through_outages: bool) -> Iterator[None]:
        try:
            if through_outages:
                connection, locked = call_with_retries(self._connect_and_lock)
            else:
                connection, locked = self._connect_and_lock()
        except sqlalchemy.exc.DBAPIError:
            yield  # an outage: the trial's own start waits it out (search.study.resilience)
            return
        with connection:
            try:
                yield
            finally:
                if locked:
                    with contextlib.suppress(sqlalchemy.exc.DBAPIError):  # gone with the session
                        _unlock(connection, self.backend, self.name)

    def _connect_and_lock(self) -> tuple[sqlalchemy.Connection, bool]:
        """A connection of its own and whether it holds the lock (False: not had in time); an
        outage, raised."""
        assert self._engine is not None
        connection = self._engine.connect()
        try:
            return connection, _lock(connection, self.backend, self.name)
        except BaseException:
            connection.close()
            raise


def new_trial_within_budget(
    study: optuna.Study, lock: BudgetLock, default_budget: int, *, points_only: bool
) -> optuna.Trial | None:
    """A new trial (the oldest queued point first) if the trials finished or running, counted
    under the lock, leave room in the budget and, for a study of fixed points, one is queued."""
    with lock.held():
        trials = study.get_trials(deepcopy=False)
        if attrs.budget_taken(trials) >= budget(study, default_budget):
            return None
        if points_only and not any(_queued_point(trial) for trial in trials):
            return None  # a study of fixed points ends when its queue is empty
        return promotion.ask_new(study, or_new=not points_only)


def _queued_point(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.WAITING and not promotion.is_continuation_queued(trial)


def _lock(connection: sqlalchemy.Connection, backend: str, name: str) -> bool:
    try:
        if backend == "postgresql":
            connection.execute(sqlalchemy.text(f"SET lock_timeout = '{LOCK_WAIT_SECONDS}s'"))
            key = {"key": _key(name)}
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), key)
            return True
        got = connection.execute(
            sqlalchemy.text("SELECT GET_LOCK(:name, :seconds)"),
            {"name": name, "seconds": LOCK_WAIT_SECONDS},
        ).scalar()
        return got == 1
    except sqlalchemy.exc.DBAPIError as error:  # a lock timeout: done without
        if is_connection_error(error):
            raise
        with contextlib.suppress(sqlalchemy.exc.DBAPIError):
            connection.rollback()
        return False


def _unlock(connection: sqlalchemy.Connection, backend: str, name: str) -> None:
    if backend == "postgresql":
        connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": _key(name)})
    else:
        connection.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
    connection.commit()


def _key(name: str) -> int:
    """PostgreSQL's advisory locks take a signed 64-bit key."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _file_lock(database: str, name: str) -> Iterator[None]:
    """A lock file per database and study in the temporary folder (never beside the user's
    database), held with flock: freed when its holder ends, however it ends. The holder removes the
    file before it lets go, so that none piles up (a holder killed inside leaves one, which the
    next holder removes); a waiter that then gets the removed file's lock finds that the path names
    no file or another one, and locks that (_locked)."""
    path = _lock_path(database, name)
    lock_file = _locked(path, time.monotonic() + LOCK_WAIT_SECONDS)
    if lock_file is None:  # a temporary folder that cannot be written, a lock held too long
        yield  # done without: the holder's file is unlocked when it ends
        return
    with lock_file:
        try:
            yield
        finally:
            # Removed while held, so a process that locks it after us knows to look again;
            # a file of another user's in a sticky /tmp stays
            with contextlib.suppress(OSError):
                path.unlink()
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _lock_path(database: str, name: str) -> Path:
    where = hashlib.sha256(f"{Path(database).resolve()} {name}".encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"hpsearch-budget-{where}.lock"


def _locked(path: Path, deadline: float) -> TextIO | None:
    """The lock file that `path` names, opened and locked; None if it cannot be opened or is not
    had by `deadline`."""
    while True:
        try:
            lock_file = open(path, "a")  # noqa: SIM115 (held by the caller)
        except OSError:
            return None
        if not _flock_by(lock_file, deadline):
            lock_file.close()
            return None
        if _names(path, lock_file):
            return lock_file
        lock_file.close()  # its holder removed it while we waited: lock the file there now
        if time.monotonic() > deadline:
            return None


def _flock_by(lock_file: TextIO, deadline: float) -> bool:
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)


def _names(path: Path, lock_file: TextIO) -> bool:
    """Whether `path` still names the file `lock_file` has open (not removed, nor replaced)."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(lock_file.fileno())
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
