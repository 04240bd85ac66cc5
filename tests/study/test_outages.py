"""What the storage waits out and what it does not: a lost connection, a restarting server and
SQLite's lock are outages; a missing table or a refused login fail at once with their message."""

from __future__ import annotations

import json
import logging
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import psutil
import psycopg
import psycopg2
import pytest
import sqlalchemy
from optuna.distributions import FloatDistribution

from search.cli import main
from search.study import resilience
from search.study.resilience import ResilientRDBStorage, is_connection_error, storage_call
from search.study.storage import open_storage
from search.url_secrets import masked
from tests.helpers import mysql, postgres
from tests.helpers.cli import run_cli
from tests.helpers.images import make_image_folder
from tests.helpers.studies import write_study


def _psycopg_error(dsn: str) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        psycopg.connect(dsn, connect_timeout=3)
    return caught.value


@pytest.mark.parametrize(
    "error, outage",
    [
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("no such table: studies"), False),
        (sqlite3.OperationalError("attempt to write a readonly database"), False),
        (sqlite3.OperationalError("database or disk is full"), False),
    ],
    ids=["sqlite-locked", "sqlite-no-table", "sqlite-read-only", "sqlite-full"],
)
def test_only_a_lock_is_an_outage_on_sqlite(error, outage):
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, error)
    assert is_connection_error(wrapped) is outage


@pytest.mark.postgres
def test_a_refused_connection_is_an_outage_and_a_refused_login_is_not():
    assert is_connection_error(_psycopg_error("host=127.0.0.1 port=1 user=root dbname=postgres"))
    assert not is_connection_error(_psycopg_error(postgres.server_url(username="nobody")))
    assert not is_connection_error(_psycopg_error(postgres.server_url(database="no_such_database")))


@pytest.mark.postgres
def test_psycopg2s_refused_connection_is_an_outage_and_its_refused_login_is_not(capsys):
    # It names the SQLSTATE pgcode, and its errors are classes of its own
    def error(dsn: str) -> psycopg2.Error:
        with pytest.raises(psycopg2.Error) as caught:
            psycopg2.connect(dsn, connect_timeout=3)
        return caught.value

    assert is_connection_error(error("host=127.0.0.1 port=1 user=root dbname=postgres"))
    assert not is_connection_error(error(postgres.server_url(username="nobody")))
    assert not is_connection_error(error(postgres.server_url(database="no_such_database")))
    # as the worker meets it: at once, not after waiting 5 minutes for the server to come
    as_nobody = postgres.server_url(drivername="postgresql+psycopg2", username="nobody")
    status, _, err = run_cli(capsys, "worker", "--study", "s", "--storage", as_nobody)
    assert status == 2 and "the server has no role 'nobody'" in err and "unreachable" not in err


@pytest.mark.postgres
@pytest.mark.parametrize(
    "url, words",
    [
        (
            postgres.server_url(database="no_such_database"),
            "the server has no database 'no_such_database': create it (`CREATE DATABASE "
            "no_such_database`), or fix the database name in the URL",
        ),
        (
            postgres.server_url(database="Mixed Case"),
            "the server has no database 'Mixed Case': create it "
            """(`CREATE DATABASE "Mixed Case"`)""",
        ),
        (
            postgres.server_url(username="nobody"),
            "the server has no role 'nobody': create it (`CREATE ROLE nobody LOGIN`), or fix the "
            "user name in the URL",
        ),
    ],
    ids=["database", "database to quote", "role"],
)
def test_a_database_or_role_the_server_lacks_is_named_with_the_statement_that_makes_it(
    capsys, url, words
):
    for command in (["status"], ["worker", "--study", "s"]):  # a worker too, at once
        status, _, err = run_cli(capsys, *command, "--storage", url)
        [line] = err.strip().splitlines()
        assert status == 2 and words in line and "cannot reach" not in line, line


@pytest.mark.postgres
def test_a_missing_database_named_like_a_restart_is_still_a_refusal():
    # A restart is told by the server's own words, not by a name it quotes back
    assert not is_connection_error(_psycopg_error(postgres.server_url(database="terminating")))


def _deadlock_error() -> psycopg.Error:
    """The error of the transaction PostgreSQL rolls back to break a real deadlock: two
    connections each hold a row the other wants."""
    first, second = (postgres.connect() for _ in range(2))
    with first, second:
        first.execute("SET deadlock_timeout = '50ms'")
        first.execute("SELECT pg_advisory_xact_lock(1)")
        second.execute("SELECT pg_advisory_xact_lock(2)")
        waiter = threading.Thread(target=_take, args=(second, 1))
        waiter.start()
        time.sleep(0.2)  # the second is waiting for lock 1 when the first asks for lock 2
        with pytest.raises(psycopg.errors.DeadlockDetected) as caught:
            first.execute("SELECT pg_advisory_xact_lock(2)")
        first.rollback()  # lets the second through
        waiter.join()
    return caught.value


def _take(connection: psycopg.Connection, lock: int) -> None:
    # Waits for the first connection's lock; the server breaks the deadlock on the first's side,
    # whose deadlock_timeout is shorter, and this one then takes the lock
    connection.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
    connection.rollback()


@pytest.mark.postgres
def test_a_transaction_rolled_back_to_break_a_deadlock_is_tried_again():
    # Optuna's trial creation tried five times on a deadlock; ours (create_trial_once) is retried
    # through call_with_retries, which must count the rollback as something a retry fixes
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, _deadlock_error())
    assert is_connection_error(wrapped)


@pytest.mark.postgres
def test_a_statement_timeout_fails_at_once_and_is_not_waited_on_as_an_outage(pg_url):
    # A managed PostgreSQL may give a role a statement_timeout; a query past it timed out again
    # on every retry, called "storage unreachable" for the ten minutes of an outage
    storage = open_storage(pg_url)
    optuna.create_study(study_name="s", storage=storage)
    slow = "SET LOCAL statement_timeout = '50ms'; SELECT pg_sleep(1)"
    started = time.monotonic()
    with pytest.raises(sqlalchemy.exc.OperationalError, match="statement timeout"):
        storage_call("get_all_studies", lambda: _execute(storage, slow))
    assert time.monotonic() - started < 5
    # A connection the server ended still is an outage
    with postgres.connect() as connection, pytest.raises(psycopg.OperationalError) as caught:
        connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert is_connection_error(caught.value)


def _execute(storage: ResilientRDBStorage, statements: str) -> None:
    with storage.engine.begin() as connection:
        connection.exec_driver_sql(statements)


@pytest.mark.parametrize(
    "message, outage",
    [
        # What the chaos run met, each from a real server stopped and started (benchmarks/chaos)
        ("the database system is not yet accepting connections", True),  # crash recovery
        ("the database system is shutting down", True),
        ("the database system is starting up", True),
        # Every slot a role may take is in use (many workers): PostgreSQL 15's words, then 16's
        ("remaining connection slots are reserved for non-replication superuser connections", True),
        ("remaining connection slots are reserved for roles with the SUPERUSER attribute", True),
        ('password authentication failed for user "nobody"', False),
    ],
)
def test_a_server_coming_back_is_an_outage_and_a_refusal_is_not(message, outage):
    refused = psycopg.OperationalError(
        f'connection to server at "127.0.0.1", port 5433 failed: FATAL:  {message}'
    )
    wrapped = optuna.exceptions.StorageInternalError("An exception is raised during the commit.")
    wrapped.__cause__ = sqlalchemy.exc.OperationalError("SELECT 1", {}, refused)
    assert is_connection_error(wrapped) is outage


def test_a_missing_table_fails_at_once_without_waiting(tmp_path, caplog):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(study_name="s", storage=storage)
    with sqlite3.connect(tmp_path / "s.db") as connection:  # another program broke the file
        connection.execute("DROP TABLE trials")
    caplog.set_level(logging.WARNING, logger="hpsearch.storage")
    with pytest.raises(optuna.exceptions.StorageInternalError):
        storage.get_all_trials(study._study_id)
    assert "storage unreachable" not in caplog.text


def test_an_in_memory_storage_keeps_its_tables():
    # hpsearch's commands refuse one (check_storage_url); the storage class still serves one
    storage = ResilientRDBStorage("sqlite:///:memory:")
    storage.configure_engine()
    optuna.create_study(study_name="kept", storage=storage)
    assert optuna.get_all_study_names(storage) == ["kept"]


def test_optunas_schema_version_template_reaches_optuna_as_given(tmp_path):
    open_storage(f"sqlite:///{tmp_path}/studies-{{SCHEMA_VERSION}}.db")
    [made] = [path.name for path in tmp_path.iterdir() if path.suffix == ".db"]
    assert made.startswith("studies-") and "%7B" not in made and "{" not in made


def test_an_unpickled_storage_still_begins_sqlite_transactions_with_the_write_lock(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    copy = pickle.loads(pickle.dumps(storage))
    with copy.engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
        # BEGIN IMMEDIATE holds the write lock: another connection cannot write meanwhile
        other = sqlite3.connect(tmp_path / "s.db", timeout=0.1)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("CREATE TABLE probe (x)")
        other.close()


def _ending_the_connection_once_at(statement_part: str):
    """The backend pids ended, and a before_cursor_execute listener that has the server end the
    connection of the first statement holding `statement_part`, as it starts: a real fault, once."""
    ended: list[int] = []

    def end_the_connection_once(connection, cursor, statement, *args) -> None:
        if ended or statement_part not in statement:
            return
        ended.append(connection.connection.dbapi_connection.info.backend_pid)
        with postgres.connect(autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (ended[0],))

    return ended, end_the_connection_once


def test_a_connection_lost_inside_optunas_cache_path_is_retried(pg_url):
    # study.get_trials() goes through Optuna's cache to RDBStorage._get_trials, a private method:
    # the server ends the connection right as its query starts, a real fault, once
    storage = open_storage(pg_url)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.tell(study.ask({"x": FloatDistribution(0, 1)}), 0.5)
    ended, end_the_connection_once = _ending_the_connection_once_at("FROM trials")
    sqlalchemy.event.listen(storage.engine, "before_cursor_execute", end_the_connection_once)
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert ended and [trial.value for trial in trials] == [0.5]


def test_a_connection_lost_mid_transaction_is_said_so_not_in_sqlalchemy_s_words(pg_url, caplog):
    # A worker's log read "storage unreachable (Can't reconnect until invalid transaction is
    # rolled back. Please rollback() fully before proceeding ...)" when its backend was killed
    engine = sqlalchemy.create_engine(pg_url)
    with sqlalchemy.orm.Session(engine) as session:
        pid = session.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar_one()
        with postgres.connect(autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))

        def next_statements() -> None:  # the one the dead connection fails, then the next
            try:
                session.execute(sqlalchemy.text("SELECT 1"))
            except sqlalchemy.exc.OperationalError:
                session.execute(sqlalchemy.text("SELECT 1"))

        with pytest.raises(sqlalchemy.exc.PendingRollbackError), caplog.at_level(logging.WARNING):
            resilience.call_with_retries(next_statements, max_outage=0.1)
    engine.dispose()
    assert "storage unreachable (a database connection was lost mid-transaction)" in caplog.text


@pytest.mark.parametrize("create", [True, False], ids=["run", "status"])
def test_a_connection_lost_while_the_storage_opens_is_retried_when_the_server_answers(
    pg_url, create, caplog
):
    # A run (no --wait-for-storage) gave up at once: "cannot reach storage ...: terminating
    # connection due to administrator command; check that its server is up", which it was
    optuna.create_study(study_name="s", storage=open_storage(pg_url))
    ended, end_the_connection_once = _ending_the_connection_once_at("FROM version_info")
    sqlalchemy.event.listen(sqlalchemy.Engine, "before_cursor_execute", end_the_connection_once)
    try:
        storage = open_storage(pg_url, create=create)
    finally:
        sqlalchemy.event.remove(sqlalchemy.Engine, "before_cursor_execute", end_the_connection_once)
    assert ended and [study.study_name for study in storage.get_all_studies()] == ["s"]
    assert "storage connection lost (terminating connection" in caplog.text


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://root@127.0.0.1:1/db", "grpc://127.0.0.1:1"], ids=["db", "grpc"]
)
def test_a_worker_waiting_for_its_storage_stops_at_once_on_sigterm(url):
    # As a SLURM or Kubernetes worker is stopped while its database or proxy is still starting:
    # it had waited on for the rest of its --wait-for-storage, then failed
    worker = subprocess.Popen(
        [sys.executable, "-m", "search", "worker", "--study", "s", "--storage", url]
        + ["--wait-for-storage", "300", "--log-format", "json"],
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_until_idle(worker.pid)  # waiting: a database's backoff has begun, or the proxy's channel
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    ended = json.loads(err.splitlines()[-1])
    assert (ended["event"], ended["finished"]) == ("worker_ended", 0)
    assert ended["why"].startswith("stopped while waiting for the")


def test_a_worker_stopped_as_it_imports_torch_ends_cleanly_before_it_joins():
    # Its handler came after torch's import (seconds): a SIGTERM then killed it, status 143,
    # which a Kubernetes Job counts as a failure and a SLURM task does not requeue
    worker = subprocess.Popen(
        [sys.executable, "-m", "search", "worker", "--study", "s"]
        + ["--storage", "postgresql+psycopg://root@127.0.0.1:1/db", "--wait-for-storage", "300"]
        + ["--log-format", "json", "--exit-status-if-stopped", "75"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not _catches_sigterm(worker.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 75, err
    ended = json.loads(err.splitlines()[-1])
    assert (ended["event"], ended["why"]) == ("worker_ended", "stopped before it joined the study")


def _wait_until_idle(pid: int) -> None:
    """Until the process, its imports done (torch's: seconds of CPU), uses none for half a second,
    as one waiting does; at most a minute."""
    process = psutil.Process(pid)
    used = sum(process.cpu_times()[:2])
    for _ in range(120):
        time.sleep(0.5)
        before, used = used, sum(process.cpu_times()[:2])
        if used - before < 0.05:
            return


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has its SIGTERM handler in place (Linux's mask of caught signals)."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    caught = next(line for line in status if line.startswith("SigCgt:")).split()[1]
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


def _end_session(dbapi_connection) -> None:
    """End a connection from the server's side, as a restart or a KILL does."""
    if isinstance(dbapi_connection, psycopg.Connection):
        with postgres.connect(autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (dbapi_connection.info.backend_pid,))
    else:
        mysql.execute(f"KILL CONNECTION {dbapi_connection.thread_id()}")


@pytest.mark.parametrize(
    "url_fixture",
    [
        pytest.param("pg_url", marks=pytest.mark.postgres),
        pytest.param("mysql_url", marks=pytest.mark.mysql),
    ],
)
def test_a_connection_ended_before_it_returns_to_the_pool_is_one_line_and_no_traceback(
    url_fixture, request, caplog
):
    # SQLAlchemy's pool rolls a connection back as it takes it back; a dead one it logged as an
    # error with the driver's whole traceback (seen under a worker whose MariaDB connections were
    # killed), which also broke a JSON log's one object a line
    storage = open_storage(request.getfixturevalue(url_fixture))
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    held = storage.engine.pool.connect()
    held.cursor().execute("SELECT 1")  # a transaction open on it
    _end_session(held.dbapi_connection)
    with caplog.at_level(logging.WARNING):
        held.close()
    [record] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert record.name == "hpsearch.storage" and record.exc_info is None
    assert record.getMessage().startswith("a database connection was lost (")
    study.tell(study.ask({"x": FloatDistribution(0, 1)}), 0.5)  # the next call opens another
    assert [trial.value for trial in study.trials] == [0.5]


def test_an_outage_longer_than_the_wait_ends_a_worker_in_one_line_naming_the_storage(
    private_postgres, tmp_path, monkeypatch, capsys, one_torch_thread
):
    # It ended the worker with SQLAlchemy's traceback, the URL's password in it
    monkeypatch.setattr(resilience, "MAX_OUTAGE_SECONDS", 0.2)  # 600 s by default
    url = private_postgres.url.replace("postgres@", "postgres:s3cret@")  # trust takes any
    images = make_image_folder(tmp_path / "images", train_per_class=8, val_per_class=4)
    study = write_study(tmp_path, images, trials=1, epochs=50, pruner='kind = "none"')
    argv = ["run", str(study), "--storage", url, "--device", "cpu", "--no-progress"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--checkpoint-dir", str(tmp_path / "c")]
    status: list[int] = []
    worker = threading.Thread(target=lambda: status.append(main(argv)))  # its one worker
    worker.start()
    with private_postgres.connect(autocommit=True) as connection:  # until its first epoch
        while not _reported(connection):
            assert worker.is_alive()
            time.sleep(0.05)
    private_postgres.stop()
    worker.join()

    assert status == [2]
    err = capsys.readouterr().err
    assert "Traceback" not in err and "s3cret" not in err
    assert re.fullmatch(
        f"hpsearch: error: storage {re.escape(masked(url))} did not answer for [0-9]+ s "
        r"\(.+\): check that its server is up and reachable from here, then run again; .+",
        err.splitlines()[-1],
    ), err


def _reported(connection: psycopg.Connection) -> bool:
    """Whether a trial reported an epoch (Optuna's tables may not be made yet)."""
    if connection.execute("SELECT to_regclass('trial_intermediate_values')").fetchone()[0] is None:
        return False
    return connection.execute("SELECT 1 FROM trial_intermediate_values").fetchone() is not None
