"""The one switch between one machine and many: a storage URL, checked and opened here.

Which URL is decided by `search.locations.storage_url`; here it is parsed and checked without
connecting (`check_storage_url`), refused when a command that only reads finds no storage
(`require_existing_storage`), and opened (`open_storage`), SQLite set up for several local workers
and its file checked for damage (search.study.integrity). Printed and stored URLs go through
`masked` (search.url_secrets), which hides every secret they carry.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
import time
from typing import Any, NamedTuple

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

from search.errors import StorageError, StorageMissing
from search.locations import sqlite_file
from search.study import mysql
from search.study.grants import (
    lacks_privilege,
    not_on_server,
    refused_connection,
    refused_login,
    refused_read,
    refused_schema,
)
from search.study.grpc_client import ResilientGrpcStorage, grpc_proxy_answers
from search.study.integrity import check_intact, full_disk, use_write_ahead_log
from search.study.optuna_compat import (
    database_behind,
    optuna_tables,
    remember_user_attrs,
    trial_id_of,
)
from search.study.optuna_version import check_version
from search.study.resilience import (
    ResilientRDBStorage,
    call_with_retries,
    first_line,
    is_connection_error,
    pause,
)
from search.study.sqlite_paths import check_sqlite_creatable, check_sqlite_url
from search.url_secrets import masked
from trainer.naming import named

logger = logging.getLogger("hpsearch.storage")

# A few local workers wait for each other's writes instead of failing
SQLITE_BUSY_TIMEOUT_SECONDS = 60
# Concurrent first runs on one new SQLite file race to create Optuna's tables (see _open_rdb)
SCHEMA_RACE_RETRIES = 5
SCHEMA_RACE_PAUSE_SECONDS = 0.2
REOPEN_PAUSE_SECONDS = 1.0  # between tries to open a storage whose server went down meanwhile
# How long a storage is opened again while its server answers but connections to it are lost
LOST_CONNECTION_SECONDS = 60.0
EXAMPLES = "e.g. sqlite:///hpsearch.db or postgresql+psycopg://user@host:5432/dbname"
# How a storage that is not there comes to be: `run --study NAME` alone never makes one
MADE_BY = "a storage is made by `hpsearch run` or `slurm` of a study file"
AMBIGUOUS = (
    "ambiguous: percent-encode an @ in its password or in a query value as %40 (and a ? in its "
    "password as %3F)"
)
# The password as SQLAlchemy cuts it from the URL's text, undecoded: a %3F there is not its ?
WRITTEN_PASSWORD = re.compile(r"[\w+]+://[^:/]*:(?P<password>[^@]*)@")


class Driver(NamedTuple):
    module: str  # what SQLAlchemy imports for it
    install: str  # how a user gets that module


# The drivers Optuna's RDBStorage works with; psycopg ships with hpsearch.
DRIVERS = {
    "sqlite": Driver("sqlite3", "it comes with Python; use a Python built with sqlite3"),
    "sqlite+pysqlite": Driver("sqlite3", "it comes with Python; use a Python built with sqlite3"),
    "postgresql+psycopg": Driver("psycopg", "pip install 'psycopg[binary]'"),
    "postgresql+psycopg2": Driver("psycopg2", "pip install psycopg2-binary"),
    "mysql+pymysql": Driver("pymysql", "pip install PyMySQL"),
    "mysql+mysqldb": Driver("MySQLdb", "pip install mysqlclient (or use mysql+pymysql://)"),
    # Optuna's gRPC storage proxy (`hpsearch grpc-proxy`), for many workers: grpc://host:port
    "grpc": Driver("grpc", "pip install 'hpsearch[grpc]'"),
}
GRPC_DEFAULT_PORT = 13000
# Short names, as SQLAlchemy reads them, except that plain postgresql:// means the driver we ship.
ALIASES = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+mysqldb",
}


def check_storage_url(url: str) -> sqlalchemy.URL:
    """Parse and check `url` without connecting (syntax, port, a supported and installed driver):
    the URL to open (plain postgresql:// becomes postgresql+psycopg://), or StorageError naming
    the bad part and the fix."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(f"malformed storage URL {masked(url)!r}; expected {EXAMPLES}") from None
    except ValueError:  # SQLAlchemy's int() of the port is the only ValueError it raises
        if url.count("@") > 1:  # a password cut at its first @: not shown, `masked` cuts it alike
            raise StorageError(f"the storage URL is {AMBIGUOUS}") from None
        raise StorageError(
            f"the port in storage URL {masked(url)!r} is not a number; expected {EXAMPLES}"
        ) from None
    # SQLAlchemy ends the password at its first @: one more @, in the password or in a query value,
    # and the rest of the password becomes the host (or the database, past a /: u:p@ss/w0rd@h/db
    # logs in to host "ss" with password "p"), or the query value joins the password
    written = WRITTEN_PASSWORD.match(url)
    cut_at_an_at = "@" in (parsed.host or "") or (
        parsed.password is not None and "@" in (parsed.database or "")
    )
    if cut_at_an_at or (written is not None and "?" in written["password"]):
        raise StorageError(f"storage URL {masked(url)!r} is {AMBIGUOUS}")
    parsed = parsed.set(drivername=ALIASES.get(parsed.drivername, parsed.drivername))
    driver = DRIVERS.get(parsed.drivername)
    if driver is None:
        raise StorageError(
            f"unsupported storage driver {parsed.drivername!r} in {masked(url)!r}: use sqlite:/// "
            f"or postgresql+psycopg:// (supported drivers: {', '.join(DRIVERS)})"
        )
    if importlib.util.find_spec(driver.module) is None:
        raise StorageError(_missing_driver(parsed.drivername, url))
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise StorageError(
            f"the port in storage URL {masked(url)!r} must be 1 to 65535, but got {parsed.port}"
        )
    if parsed.drivername.startswith("sqlite"):
        check_sqlite_url(parsed, url)
    return parsed


def _missing_driver(drivername: str, url: str) -> str:
    driver = DRIVERS[drivername]
    return (
        f"storage URL {masked(url)!r} needs the {drivername} driver, but its module "
        f"{driver.module!r} is not installed: {driver.install}"
    )


def require_existing_storage(url: str) -> sqlalchemy.URL:
    """`check_storage_url`, then refuse a SQLite storage whose file does not exist, so that a
    command that only reads (status, report, export, dashboard, worker) never creates one."""
    parsed = check_storage_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return parsed  # a server refuses a database that does not exist when we connect
    database = sqlite_file(parsed)
    assert database is not None  # check_storage_url refused an in-memory database
    if not database.is_file():
        raise StorageMissing(
            f"SQLite storage {database} does not exist (from {masked(url)!r}); check the path "
            f"or {named('storage')}: {MADE_BY}"
        )
    return parsed


def check_sqlite_intact(url: str) -> None:
    """A SQLite storage's file, if it exists, passes its quick check (StorageDamaged otherwise);
    nothing is checked for other storages."""
    _check_sqlite_intact(check_storage_url(url))


def _check_sqlite_intact(parsed: sqlalchemy.URL, *, creating: bool = True) -> None:
    # On opening: damage is named before anything reads the file, not as the failure of whatever
    # reaches it first
    database = sqlite_file(parsed)
    if database is not None and database.is_file():
        check_intact(database, creating=creating)


def check_reachable(
    url: str, *, wait_seconds: float = 0, stop: threading.Event | None = None
) -> None:
    """Connect once to a database server, writing nothing, so that a server that cannot be
    reached is known before the data is decoded; a SQLite file is opened (and made) later.
    Setting `stop` ends a wait with WaitStopped."""
    parsed = check_storage_url(url)
    if parsed.drivername.startswith("sqlite"):
        return
    if parsed.drivername == "grpc":
        _reach_grpc_proxy(parsed, url, wait_seconds, stop)
        return
    mysql.check_greets(parsed, masked(url))
    try:
        wait_until_reachable(parsed, wait_seconds, stop)
    except sqlalchemy.exc.DBAPIError as error:
        raise _failed(parsed, url, error) from None


def wait_until_reachable(
    url: sqlalchemy.URL, seconds: float, stop: threading.Event | None = None
) -> None:
    """Connect once, waiting up to `seconds` for a database that is still starting (on a cluster
    the database and the workers start together); a database that never answers raises."""
    engine = sqlalchemy.create_engine(url)
    try:
        call_with_retries(lambda: engine.connect().close(), max_outage=seconds, stop=stop)
    finally:
        engine.dispose()


def open_storage(
    url: str, *, create: bool = True, wait_seconds: float = 0, stop: threading.Event | None = None
) -> optuna.storages.BaseStorage:
    """Open the storage at `url`, creating it (a SQLite file, Optuna's tables) unless `create` is
    False: then a storage that does not exist is refused (`require_existing_storage`), and so is a
    database without Optuna's tables, which a command that only reads must not write into.
    A database server that does not answer yet is waited for up to `wait_seconds`, or until `stop`
    is set (WaitStopped)."""
    check_version()  # before any call into Optuna's internals
    parsed = check_storage_url(url) if create else require_existing_storage(url)
    _check_sqlite_intact(parsed, creating=create)
    if create:
        check_sqlite_creatable(parsed)
    if parsed.drivername == "grpc":
        host, port = _reach_grpc_proxy(parsed, url, wait_seconds, stop)
        return ResilientGrpcStorage(host=host, port=port)
    mysql.check_greets(parsed, masked(url))
    sqlite = parsed.drivername.startswith("sqlite")
    engine_kwargs = (
        {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}}
        if sqlite
        else {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 2}
    )
    deadline = time.monotonic() + wait_seconds
    lost_deadline = time.monotonic() + LOST_CONNECTION_SECONDS
    try:
        while True:
            try:
                if wait_seconds and not sqlite:
                    wait_until_reachable(parsed, max(0.0, deadline - time.monotonic()), stop)
                if not create:
                    _require_tables(parsed, engine_kwargs, url)
                storage = _open_rdb(parsed, url, engine_kwargs=engine_kwargs)
                break
            except Exception as error:
                # A server that answered and then went down (a restart, a crash recovery) while
                # the tables were read or created: wait for it again, within the same deadline.
                # One that answers again lost a connection (a killed backend, a failover): open
                # again, whatever the deadline, as every later call would be tried again
                if sqlite or not is_connection_error(error):
                    raise
                if time.monotonic() >= deadline and not (
                    time.monotonic() < lost_deadline and _answers(parsed)
                ):
                    raise
                logger.warning("storage connection lost (%s); opening it again", first_line(error))
                pause(REOPEN_PAUSE_SECONDS, stop)
    except (OperationalError, sqlalchemy.exc.DBAPIError) as error:
        raise full_disk(parsed, error) or _failed(parsed, url, error) from None
    except optuna.exceptions.StorageInternalError as error:  # Optuna's wrapping of the above
        refused = lacks_privilege(error) or mysql.refusal(error) is not None
        full = full_disk(parsed, error)
        if full is not None:
            raise full from None
        if not (is_connection_error(error) or refused):
            raise
        raise _failed(parsed, url, error) from None
    except ImportError as error:  # found, but it would not load (a missing libpq, say)
        raise StorageError(f"{_missing_driver(parsed.drivername, url)} ({error})") from None
    if sqlite_file(parsed) is not None:
        use_write_ahead_log(storage.engine)
    storage.configure_engine()
    return storage


def _answers(url: sqlalchemy.URL) -> bool:
    """Whether the server at `url` takes a connection now."""
    try:
        wait_until_reachable(url, 0)
    except Exception:  # noqa: BLE001 - whatever the reason, it does not
        return False
    return True


def _reach_grpc_proxy(
    parsed: sqlalchemy.URL, url: str, wait_seconds: float, stop: threading.Event | None = None
) -> tuple[str, int]:
    """The proxy's host and port as Optuna's client takes them, once the proxy answers there;
    StorageError, as for a database server, when it does not."""
    host = parsed.host or "localhost"
    host = f"[{host}]" if ":" in host else host  # IPv6: Optuna's client writes host:port
    port = parsed.port or GRPC_DEFAULT_PORT
    if not grpc_proxy_answers(f"{host}:{port}", wait_seconds, stop):
        waited = f" within {wait_seconds:g} s" if wait_seconds else ""
        raise StorageError(
            f"cannot reach storage {masked(url)}: no gRPC proxy answered at {host}:{port}{waited}; "
            "start one there with `hpsearch grpc-proxy`, or fix the address"
        )
    return host, port


def _unreachable(url: str, error: BaseException) -> StorageError:
    """A server not reached, or one that refused a login or has no such database or role."""
    refusal = refused_connection(error, make_url(url))
    if refusal is not None:
        return StorageError(f"storage {masked(url)} refuses connections: {refusal}")
    # The server (or libpq, for the URL's settings) answered: a login refused, or no such name
    answered = refused_login(error, make_url(url)) or mysql.refused_login(error)
    answered = answered or not_on_server(error) or mysql.missing_database(error)
    if answered is not None:
        return StorageError(f"storage {masked(url)}: {answered}")
    return StorageError(
        f"cannot reach storage {masked(url)}: {first_line(error)}; check that its server is up "
        "and this machine reaches its host and port, or fix them in the URL"
    )


def _failed(parsed: sqlalchemy.URL, url: str, error: BaseException) -> StorageError:
    """Why a server did not open: it was reached, and refused this role a read (which table, and
    the GRANT, where the catalog tells) or, on MySQL, this account a database, a statement or a
    write (the GRANT for the account it names), or it could not be reached."""
    denied = mysql.refusal(error)
    if denied is not None:
        return StorageError(
            f"storage {masked(url)} refuses this account: {mysql.refused(denied, parsed)}"
        )
    if not lacks_privilege(error):
        return _unreachable(url, error)
    reason = refused_read(parsed, optuna_tables()) or first_line(error)
    return StorageError(f"storage {masked(url)} refuses reads: {reason}")


def _require_tables(parsed: sqlalchemy.URL, engine_kwargs: dict, url: str) -> None:
    engine = sqlalchemy.create_engine(parsed, **engine_kwargs)
    try:
        with engine.connect() as connection:
            present = sqlalchemy.inspect(connection).has_table("studies")
            # Tables in a schema this role may not use look missing: name the schema instead
            hidden = None if present else refused_schema(connection, "studies")
    finally:
        engine.dispose()
    if hidden is not None:
        raise StorageError(f"storage {masked(url)} refuses reads: {hidden}")
    if not present:
        file = sqlite_file(parsed)
        empty = file is not None and file.is_file() and file.stat().st_size == 0
        cut = (
            "; its file is empty: if it held studies, it was cut short, and a backup restores them"
        )
        raise StorageMissing(
            f"storage {masked(url)} holds no studies (no Optuna tables{cut if empty else ''}); "
            f"check {named('storage')}: {MADE_BY}"
        )


def _open_rdb(parsed: sqlalchemy.URL, url: str, **kwargs: Any) -> ResilientRDBStorage:
    """Optuna's storage, surviving another process that creates the same new schema right now.

    Optuna creates its tables one by one, each after checking that it is missing, then stamps the
    schema version, so two first runs on one new database can both create `studies` or
    PostgreSQL's enum type `studydirection`, or both stamp (`schema_raced`). Trying again skips
    what now exists; the other process needs milliseconds to create the rest.
    The caller's URL goes to Optuna as given (rendering it again would percent-encode Optuna's
    `{SCHEMA_VERSION}` template), unless plain postgresql:// had to name its driver.
    """
    given = make_url(url).drivername == parsed.drivername
    text = url if given else parsed.render_as_string(hide_password=False)
    for attempt in range(SCHEMA_RACE_RETRIES):
        try:
            return ResilientRDBStorage(text, **kwargs)
        except sqlalchemy.exc.DBAPIError as error:
            if not schema_raced(error) or attempt + 1 == SCHEMA_RACE_RETRIES:
                raise
            time.sleep(SCHEMA_RACE_PAUSE_SECONDS)
    raise AssertionError("unreachable")  # the loop returns or raises


def schema_raced(error: sqlalchemy.exc.DBAPIError) -> bool:
    """Whether another process made this part of a new schema first: a table ("table studies
    already exists": SQLite's OperationalError, PostgreSQL's and MySQL's ProgrammingError), an enum
    type on PostgreSQL, or the version stamp's row (a unique violation: IntegrityError)."""
    return isinstance(error, IntegrityError) or "already exists" in str(error.orig)


def set_user_attrs(trial: optuna.Trial, values: dict[str, Any]) -> None:
    """`trial.set_user_attr` for several keys at once: one transaction on a database, where a call
    each would commit (and, on PostgreSQL, wait for the disk) once a key; one call each through
    the gRPC proxy, which has no such call."""
    database = database_behind(trial.storage)
    if not isinstance(database, ResilientRDBStorage):
        for key, value in values.items():
            trial.set_user_attr(key, value)
        return
    database.set_trial_user_attrs(trial_id_of(trial), values)
    remember_user_attrs(trial, values)
