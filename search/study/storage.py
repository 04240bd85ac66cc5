"""The one switch between one machine and many: a storage URL, opened here.

Which URL is decided by `search.locations.storage_url`; here it is parsed, checked and opened,
SQLite set up for several local workers. Printed URLs never show a password.
"""

from __future__ import annotations

import re

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from search.errors import StorageError
from search.study.resilience import ResilientRDBStorage

# A few local workers wait for each other's writes instead of failing
SQLITE_BUSY_TIMEOUT_SECONDS = 60


def masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def normalized(url: str) -> sqlalchemy.URL:
    """Parse `url`; plain postgresql:// means psycopg 3, the driver we ship."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"malformed storage URL {masked(url)!r}; expected e.g. sqlite:///hpsearch.db "
            "or postgresql+psycopg://user@host:5432/dbname"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if not parsed.drivername.startswith(("sqlite", "postgresql", "mysql")):
        raise StorageError(
            f"unsupported storage URL {masked(url)!r}: use sqlite:/// or postgresql+psycopg://"
        )
    return parsed


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    stale_trial_callback=None,
) -> ResilientRDBStorage:
    parsed = normalized(url)
    sqlite = parsed.drivername.startswith("sqlite")
    engine_kwargs = (
        {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}}
        if sqlite
        else {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 2}
    )
    try:
        storage = ResilientRDBStorage(
            parsed.render_as_string(hide_password=False),
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=stale_trial_callback,
        )
    except (OperationalError, sqlalchemy.exc.DBAPIError) as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise StorageError(f"cannot reach storage {masked(url)}: {reason}") from None
    if sqlite:
        _use_write_ahead_log(storage)
        _begin_immediately(storage.engine)
    return storage


def _use_write_ahead_log(storage: optuna.storages.RDBStorage) -> None:
    # WAL lets readers (the progress line, status, the dashboard) run while a worker writes;
    # it is a property of the database file, so setting it once is enough.
    with storage.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")


def _begin_immediately(engine: sqlalchemy.Engine) -> None:
    """Make every SQLite transaction take the write lock when it begins.

    pysqlite starts no transaction for a SELECT, so Optuna's "is this queued trial still WAITING?"
    and its "mark it RUNNING" are not atomic, and two local workers can take the same queued
    point. SQLAlchemy's recipe for SQLite: let pysqlite do nothing and begin transactions ourselves.
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def no_implicit_transactions(dbapi_connection, connection_record) -> None:
        dbapi_connection.isolation_level = None

    @sqlalchemy.event.listens_for(engine, "begin")
    def begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners existed must not be reused
