"""Surviving a database that restarts: storage calls that wait and reconnect, and writes safe to
retry when the answer to their commit was lost. A call on a SQLite file that fails with a database
error has the file checked, so that damage, or a full disk, is named as such
(search.study.integrity).

The heartbeat that keeps beating through an outage, so a live trial never looks dead, is the
worker's (search.run.liveness); it calls the storage `without_retries`, on a deadline of its own.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from search.errors import HpsearchError, StorageError, WaitStopped, error_chain
from search.study import mysql
from search.study.grants import client_refused
from search.study.integrity import sqlite_trouble
from search.study.optuna_compat import (
    READ_PREFIXES,
    TrialsCreatedOnce,
    storage_transactions,
    write_trial_state,
    write_trial_user_attrs,
)
from search.url_secrets import masked

logger = logging.getLogger("hpsearch.storage")

BACKOFF_SECONDS = (0.5, 1, 2, 4, 8, 15, 30)  # then 30 s until MAX_OUTAGE_SECONDS have passed
MAX_OUTAGE_SECONDS = 600.0
# PostgreSQL's operator interventions that a later connection outlives: admin_shutdown (a server
# stopping, or pg_terminate_backend), crash_shutdown, cannot_connect_now, idle_session_timeout
TRANSIENT_SQLSTATES = ("57P01", "57P02", "57P03", "57P05")
# PostgreSQL's FATAL messages of a server that will accept connections again soon
TRANSIENT_FATAL = (
    "starting up",
    "not yet accepting connections",  # crash recovery after an immediate stop
    "shutting down",
    "recovery mode",
    "too many",
    # every connection a role without SUPERUSER may open is open: as "too many", to a role that
    # has it (PostgreSQL 15 and 16 word it apart)
    "remaining connection slots",
    "terminating",
)


def is_connection_error(error: BaseException) -> bool:
    """True for a lost or refused connection, a database restarting, or SQLite's lock held by
    another worker: what waiting fixes. False for anything else (no such table, a read-only file,
    a full disk, bad data), which fails at once with its own message.

    The outage may sit down the chain: Optuna wraps it (StorageInternalError), and SQLAlchemy
    reports a connection lost mid-transaction as the PendingRollbackError of the next statement.
    """
    return any(_is_outage(link) for link in error_chain(error))


def _is_outage(error: BaseException) -> bool:
    if _is_grpc_error(error):
        # The gRPC proxy down, restarting, or the network to it lost (Optuna's client passes
        # other codes on as KeyError and the like, so only this one reaches here as an RpcError)
        return error.code().name == "UNAVAILABLE"  # type: ignore[attr-defined]
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        if error.connection_invalidated:
            return True
        generic = isinstance(
            error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
        )
        return _transient(error.orig, generic)
    return _transient(error, generic=False)


def _is_grpc_error(error: BaseException) -> bool:
    # By its module, since grpc is an optional dependency (hpsearch[grpc]) this module must not
    # import; its errors are also grpc.Call objects, whose code() says what failed
    return type(error).__module__.split(".")[0] == "grpc" and callable(getattr(error, "code", None))


def _transient(driver_error: BaseException | None, generic: bool) -> bool:
    """The driver's own error: SQLite says "locked" or "busy"; PostgreSQL gives no SQLSTATE for a
    lost connection, class 08 for a connection exception, 57P01 to 57P03 and 57P05 for a server
    shutting down or starting up or a connection it ended (not the rest of class 57: a statement
    cancelled by statement_timeout would time out again on every retry, and a dropped database
    stays dropped), and 40 for a transaction it rolled back to break a deadlock or a serialization
    conflict between workers, which runs through when tried again; MySQL and MariaDB give an error
    number (search.study.mysql). Another driver's OperationalError counts as an outage, as
    SQLAlchemy files it."""
    driver = type(driver_error).__module__.split(".")[0]
    if driver in mysql.DRIVERS:
        return mysql.is_outage(driver_error)
    if driver == "sqlite3":
        return any(word in str(driver_error) for word in ("locked", "busy"))
    if driver in ("psycopg", "psycopg2"):
        # psycopg names the SQLSTATE sqlstate, psycopg2 pgcode
        sqlstate = getattr(driver_error, "sqlstate", None) or getattr(driver_error, "pgcode", None)
        if sqlstate is not None:
            return sqlstate[:2] in ("08", "40") or sqlstate in TRANSIENT_SQLSTATES
        # Each driver's own classes (psycopg2 is optional: by name), subclasses included
        kinds = {kind.__name__ for kind in type(driver_error).__mro__}
        if not kinds & {"OperationalError", "InterfaceError"}:
            return False
        # A refused connection has no SQLSTATE, and neither has the server's refusal of a login
        # ("FATAL: role ... does not exist"): only a server that is going or coming is waited for.
        # The server quotes the names it refuses, which are the user's words, not its own: a
        # database named "terminating" that does not exist is a refusal, not a restart.
        # libpq's own refusals of what the URL asks (no password, SSL) fail alike on every try.
        text = re.sub(r'"[^"]*"', '""', str(driver_error))
        if "FATAL:" in text:
            return any(word in text for word in TRANSIENT_FATAL)
        return not client_refused(driver_error)
    return generic


class _Outages:
    # When a storage call of this process last met an outage, or came through one (time.time())
    last_seen = 0.0


def last_outage_seen() -> float:
    """When a storage call of this process last failed for an outage, or answered after one; 0
    if none has (search.run.liveness counts others' silence from then: they could not beat)."""
    return _Outages.last_seen


def call_with_retries(
    function: Callable[..., Any],
    *args: Any,
    max_outage: float | None = None,
    stop: threading.Event | None = None,
    **kwargs: Any,
) -> Any:
    """`function(*args, **kwargs)`, tried again after each outage with logged backoff until
    `max_outage` seconds (MAX_OUTAGE_SECONDS) have passed; WaitStopped as soon as `stop` is set in
    a backoff."""
    max_outage = MAX_OUTAGE_SECONDS if max_outage is None else max_outage
    started = time.monotonic()
    for attempt in itertools.count():
        try:
            answer = function(*args, **kwargs)
        except Exception as error:
            waited = time.monotonic() - started
            if not is_connection_error(error):
                raise
            _Outages.last_seen = time.time()
            if waited >= max_outage:
                raise
            delay = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)]
            logger.warning(
                "storage unreachable (%s); retry %d in %.1f s, %.0f s into the outage",
                first_line(error),
                attempt + 1,
                delay,
                waited,
            )
            pause(delay, stop)
            continue
        if attempt:
            _Outages.last_seen = time.time()
        return answer


def pause(seconds: float, stop: threading.Event | None) -> None:
    """Sleep, or end the wait with WaitStopped once `stop` is set (a worker's SIGTERM while it
    waits for its storage: there is nothing to finish yet, so it need not wait on)."""
    if stop is None:
        time.sleep(seconds)
    elif stop.wait(seconds):
        raise WaitStopped("stopped while waiting for the storage")


def first_line(error: BaseException) -> str:
    """What went wrong, in one line: the driver's own message where SQLAlchemy or Optuna wrap it."""
    cause = error.__cause__ or error
    if any(isinstance(link, sqlalchemy.exc.PendingRollbackError) for link in error_chain(error)):
        # SQLAlchemy's "Can't reconnect until invalid transaction is rolled back. Please ..."
        return "a database connection was lost mid-transaction"
    if _is_grpc_error(cause):  # its str() is a many-line dump
        return f"{cause.code().name}: {cause.details()}"  # type: ignore[attr-defined]
    driver_error = getattr(cause, "orig", None) or cause
    if mysql.error_number(driver_error) is not None and len(driver_error.args) > 1:
        return f"{driver_error.args[1]} (MySQL error {driver_error.args[0]})"  # not a tuple's repr
    text = str(driver_error).strip()
    return text.splitlines()[0] if text else type(cause).__name__


# How deep this thread is in storage calls: only the outermost one waits out an outage, since a
# method's inner calls share its transaction and retrying them alone would retry half of it.
# The outermost call also says whether its transactions may write (see _begin_immediately).
_nesting = threading.local()


@contextmanager
def _inside_a_call(name: str) -> Iterator[None]:
    depth = getattr(_nesting, "depth", 0)
    if depth == 0:
        _nesting.reads_only = name.startswith(READ_PREFIXES)
    _nesting.depth = depth + 1
    try:
        yield
    finally:
        _nesting.depth -= 1


def _reads_only() -> bool:
    """Whether this thread is inside a storage call that only reads; False outside any."""
    return getattr(_nesting, "depth", 0) > 0 and _nesting.reads_only


def storage_call(name: str, call: Callable[[], Any], unanswered: Unanswered | None = None) -> Any:
    """`call()`, the storage method `name`'s work, waiting out outages if it is the outermost
    storage call of this thread; an inner call runs once, its caller's retry covers it. An outage
    that outlasts the wait is one line, `unanswered`'s, where the driver's traceback ended a
    worker (a password in it)."""
    if getattr(_nesting, "depth", 0):
        return call()
    started = time.monotonic()
    with _inside_a_call(name):
        try:
            return call_with_retries(call)
        except Exception as error:
            if unanswered is None or not is_connection_error(error):
                raise
            raise StorageError(
                f"{unanswered.storage} did not answer for {time.monotonic() - started:.0f} s "
                f"({first_line(error)}): {unanswered.remedy}, then run again; a trial that was "
                "running is resumed from its last checkpoint"
            ) from error


class Unanswered(NamedTuple):
    storage: str  # the storage, as a line names it: its URL, password masked, or the proxy's
    remedy: str  # what to do about an outage that outlasts the wait


def _retrying(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: RDBStorage, *args: Any, **kwargs: Any) -> Any:
        if getattr(_nesting, "depth", 0):  # inside a call: its caller checks for damage
            return method(self, *args, **kwargs)
        url = self.engine.url
        try:
            return storage_call(
                method.__name__, lambda: method(self, *args, **kwargs), _unanswered(url)
            )
        except HpsearchError:
            raise
        except Exception as error:  # a SQLite file's full disk or damage, in one line
            trouble = sqlite_trouble(url, error)
            if trouble is not None:
                raise trouble from error
            raise

    return wrapper


def _unanswered(url: sqlalchemy.URL) -> Unanswered:
    shown = f"storage {masked(url.render_as_string(hide_password=False))}"
    if url.get_backend_name() == "sqlite":  # its write lock, held by another process that long
        return Unanswered(shown, "stop the process that holds its write lock")
    return Unanswered(shown, "check that its server is up and reachable from here")


class _LostConnectionInOneLine(logging.Filter):
    """SQLAlchemy's pool logs a connection it finds dead as it takes it back (a server restart or
    a KILL ended it while a worker held it) as an error with a whole traceback, though it drops
    the connection and the next call opens another. It is an outage like any other, which the
    retries already wait out: one warning line of hpsearch's says it, in the log's own format (a
    traceback would break a JSON log's one object a line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None or not is_connection_error(error):
            return True  # anything else keeps its traceback: that one is news
        logger.warning(
            "a database connection was lost (%s); it is dropped, the next call opens another",
            first_line(error),
        )
        return False


_LOST_CONNECTION_IN_ONE_LINE = _LostConnectionInOneLine()


def log_lost_connections_in_one_line(engine: sqlalchemy.Engine) -> None:
    # On the pool's own logger (wrapped when echo_pool is set): a filter sees only the records of
    # the logger it is on
    pool_logger = engine.pool.logger
    if not isinstance(pool_logger, logging.Logger):
        pool_logger = pool_logger.logger
    pool_logger.addFilter(_LOST_CONNECTION_IN_ONE_LINE)


class ResilientRDBStorage(TrialsCreatedOnce):
    """An RDBStorage whose every call waits out a database outage with bounded, logged backoff."""

    def configure_engine(self) -> None:
        """What the engine needs beyond Optuna's settings: a lost connection told in one line,
        SQLite transactions on a file that take the write lock at once."""
        log_lost_connections_in_one_line(self.engine)
        on_file = self.engine.url.database not in (None, "", ":memory:")
        if self.engine.dialect.name == "sqlite" and on_file:
            _begin_immediately(self.engine)

    @property
    def shown(self) -> str:
        """The storage as a line names it: its URL, password masked."""
        return _unanswered(self.engine.url).storage

    @_retrying
    def set_trial_user_attrs(self, trial_id: int, values: dict[str, Any]) -> None:
        """Several user attributes in one transaction: one commit, where `set_trial_user_attr`
        makes one a key."""
        write_trial_user_attrs(self, trial_id, values)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        """Optuna's, safe to retry when the answer to a commit was lost: each attempt stamps the
        trial with the time of this call and recognises it (`write_trial_state`), so a retried
        tell of a trial it already finished succeeds, and so does a retried claim (WAITING to
        RUNNING) that already took the trial."""
        return self._set_trial_state_stamped(trial_id, state, values, datetime.now())

    @_retrying
    def _set_trial_state_stamped(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None, stamp: datetime
    ) -> bool:
        return write_trial_state(self, trial_id, state, values, stamp)

    # Each attempt finds the trial (or study) an earlier one made: a lost commit makes one, not two
    create_trial_once = _retrying(TrialsCreatedOnce.create_trial_once)
    create_study_once = _retrying(TrialsCreatedOnce.create_study_once)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Optuna rebuilds the engine of an unpickled storage (a spawned process, say) from its
        # URL alone, so the listeners are installed again.
        super().__setstate__(state)
        self.configure_engine()


for _name in storage_transactions():
    # its own methods wait out outages already, and TrialsCreatedOnce's call the retried one
    if _name not in {*vars(ResilientRDBStorage), *vars(TrialsCreatedOnce)}:
        setattr(ResilientRDBStorage, _name, _retrying(getattr(RDBStorage, _name)))


def without_retries(storage: optuna.storages.BaseStorage, name: str) -> Callable[..., Any]:
    """The storage's method `name`, called without waiting out an outage: for a caller with a
    shorter deadline of its own (a heartbeat)."""
    method = getattr(storage, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        with _inside_a_call(name):
            return method(*args, **kwargs)

    return call


def _begin_immediately(engine: sqlalchemy.Engine) -> None:
    """Make every SQLite transaction that may write take the write lock when it begins.

    pysqlite starts no transaction for a SELECT, so Optuna's "is this queued trial still WAITING?"
    and its "mark it RUNNING" are not atomic, and two local workers can take the same queued
    point. SQLAlchemy's recipe for SQLite: let pysqlite do nothing and begin transactions ourselves.
    A storage method that only reads begins plainly: in WAL mode it reads a snapshot and waits for
    no writer, so the dashboard, `status` and the progress line never queue behind the workers.
    An in-memory database is one process's alone, and disposing of its engine would drop it.
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def no_implicit_transactions(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None
        # In WAL mode a commit then waits for no disk write, only a checkpoint does: a crash of
        # the machine (not of a worker) may lose the last commits, never corrupt the file. A trial
        # commits at every epoch, each waiting for the disk otherwise.
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")

    @sqlalchemy.event.listens_for(engine, "begin")
    def begin(connection: sqlalchemy.Connection) -> None:
        connection.exec_driver_sql("BEGIN" if _reads_only() else "BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners existed must not be reused
