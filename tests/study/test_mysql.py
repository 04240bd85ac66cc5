"""A study on a real MariaDB (`mysql+pymysql://`), the other server Optuna supports: workers share
it as they share PostgreSQL, a server that goes away is waited for, and what it refuses (a login,
a database, a write, the creation of Optuna's tables) is one line at once with the GRANT that lifts
it, not ten minutes of "storage unreachable"; each GRANT shown is run and the command then works.
"""

from __future__ import annotations

import contextlib
import re
import time

import optuna
import pymysql
import pytest
import sqlalchemy
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from search.study.resilience import is_connection_error
from tests.helpers import mysql
from tests.helpers.cli import run_cli
from tests.helpers.studies import trials_of, write_study
from tests.study.test_shared_study import hpsearch, outage_study, wait_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAME = "test-study"


def _grant_shown(err: str) -> str:
    [line] = err.strip().splitlines()
    assert "storage unreachable" not in line  # refused at once, not waited on as an outage
    [grant] = re.findall(r"`(GRANT [^`]+)`", line)
    return grant


def _database(url: str) -> str:
    database = make_url(url).database
    assert database is not None
    return database


def _kill_connections(database: str) -> int:
    """Kill every session using `database`, as a server restart does to the workers'; how many."""
    with mysql.connect() as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM information_schema.PROCESSLIST WHERE db = %s AND id <> CONNECTION_ID()",
            (database,),
        )
        sessions = [row[0] for row in cursor.fetchall()]
        for session in sessions:
            # one that ended meanwhile is an unknown thread (1094)
            with contextlib.suppress(pymysql.err.OperationalError):
                cursor.execute(f"KILL CONNECTION {session}")
    return len(sessions)


def test_two_workers_share_a_study_and_outlive_their_connections_killed_mid_trial(
    tmp_path, image_folder, cache_dir, mysql_url, capsys
):
    path = outage_study(tmp_path, image_folder, trials=3, epochs=2)
    workers = hpsearch(
        "run", path, "--storage", mysql_url, "--workers", "2", "--cache-dir", cache_dir,
        "--device", "cpu", "--checkpoint-dir", tmp_path / "ckpt", "--no-progress",
    )  # fmt: skip
    wait_for(
        lambda: any(trial.intermediate_values for trial in trials_of(mysql_url)),
        180,
        "a trial with a reported epoch",
    )
    killed = 0
    for _ in range(3):  # at three moments of the trials: a report, a heartbeat, a claim
        killed += _kill_connections(_database(mysql_url))
        time.sleep(1)
    _, err = workers.communicate(timeout=300)
    assert workers.returncode == 0, err
    assert killed >= 2 and "Traceback" not in err
    trials = trials_of(mysql_url)
    # Past the budget only if a killed connection was the one holding the budget's lock
    assert 3 <= len(trials) <= 4 and all(t.state == TrialState.COMPLETE for t in trials), (
        "a trial failed or was trained twice"
    )
    assert len({trial.params["lr"] for trial in trials}) == len(trials), "each trial ran once"
    status, out, _ = run_cli(capsys, "status", "--storage", mysql_url)
    assert status == 0 and re.search(rf"{NAME} +{len(trials)}/3 ", out)


def _driver_error(**connect) -> pymysql.err.MySQLError:
    with pytest.raises(pymysql.err.MySQLError) as caught:
        pymysql.connect(host="127.0.0.1", connect_timeout=3, **connect)
    return caught.value


@pytest.mark.mysql
def test_a_server_gone_is_an_outage_and_a_refused_login_or_database_is_not():
    assert is_connection_error(_driver_error(port=1, user="root"))
    assert not is_connection_error(_driver_error(user="nobody_here"))  # 1045 (or 1698)
    assert not is_connection_error(_driver_error(user="root", database="no_such_database"))
    with mysql.connect() as killed:  # what a restarted server leaves a worker's connection
        mysql.execute(f"KILL CONNECTION {killed.thread_id()}")
        with pytest.raises(pymysql.err.OperationalError) as caught:
            killed.cursor().execute("SELECT 1")
    assert is_connection_error(caught.value)


def test_a_lock_held_by_another_worker_is_waited_out(mysql_url):
    table = f"{_database(mysql_url)}.counters"
    mysql.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY)", f"INSERT INTO {table} VALUES (1)")
    with mysql.connect(autocommit=False) as holder, mysql.connect() as waiter:
        holder.cursor().execute(f"SELECT id FROM {table} WHERE id = 1 FOR UPDATE")
        waiter.cursor().execute("SET SESSION innodb_lock_wait_timeout = 1")
        with pytest.raises(pymysql.err.OperationalError) as caught:  # 1205, a second later
            waiter.cursor().execute(f"UPDATE {table} SET id = 2 WHERE id = 1")
    wrapped = sqlalchemy.exc.OperationalError("UPDATE", {}, caught.value)
    assert is_connection_error(wrapped), "tried again once the lock is free, it runs through"


def test_a_worker_on_a_database_that_does_not_exist_stops_at_once(mysql_url, capsys):
    missing = mysql_url.replace(_database(mysql_url), "no_such_database")
    status, _, err = run_cli(capsys, "worker", "--study", NAME, "--storage", missing)
    [line] = err.strip().splitlines()
    # at once (a worker waits 5 minutes for a server that is down), and in words, not a tuple
    assert status == 2 and line.endswith(
        "the server has no database 'no_such_database': create it (`CREATE DATABASE "
        "no_such_database`), or fix the database name in the URL"
    )


def test_a_new_study_whose_name_mariadb_takes_for_another_is_refused_before_the_data(
    tmp_path, image_folder, mysql_url, capsys
):
    # MariaDB's collation ignores case: "Test-Study" is taken by "test-study" (the run used to
    # decode the data, then say the study it could not create "disappeared")
    optuna.create_study(study_name="Test-Study", storage=mysql_url, direction="maximize")
    study_file = write_study(tmp_path, image_folder, name="test-study")
    status, _, err = run_cli(capsys, "run", study_file, "--storage", mysql_url, "--create-only")
    assert status == 2 and "by study 'Test-Study', which its database does not tell apart" in err
    assert optuna.get_all_study_names(mysql_url) == ["Test-Study"]


def test_an_account_refused_the_database_then_its_writes_is_told_each_grant(
    tmp_path, image_folder, mysql_url, capsys
):
    database = _database(mysql_url)
    study_file = write_study(tmp_path, image_folder, trials=2, epochs=1)
    assert run_cli(capsys, "run", study_file, "--storage", mysql_url, "--create-only")[0] == 0
    created = optuna.load_study(study_name=NAME, storage=mysql_url).user_attrs
    with mysql.account() as user:
        as_user = mysql.storage_url(database, username=user)
        status, _, err = run_cli(capsys, "run", study_file, "--storage", as_user)
        assert status == 2 and f"Access denied for user '{user}'@'127.0.0.1'" in err
        grant = _grant_shown(err)
        assert grant == f"GRANT SELECT, INSERT, UPDATE ON {database}.* TO '{user}'@'127.0.0.1'"

        mysql.execute(f"GRANT SELECT ON {database}.* TO '{user}'@'127.0.0.1'")  # reads only
        status, _, err = run_cli(capsys, "run", study_file, "--storage", as_user, "--trials", "3")
        assert status == 2 and "refuses writes" in err and "INSERT command denied" in err
        assert _grant_shown(err) == grant
        stored = optuna.load_study(study_name=NAME, storage=mysql_url)
        assert (stored.trials, stored.user_attrs) == ([], created), "nothing written: no budget"

        mysql.execute(grant)
        status, _, err = run_cli(capsys, "run", study_file, "--storage", as_user, "--device", "cpu")
        assert status == 0, err
    assert len(optuna.load_study(study_name=NAME, storage=mysql_url).trials) == 2


def test_an_account_that_may_not_create_tables_is_told_the_grant_and_nothing_is_made(
    tmp_path, image_folder, mysql_url, capsys
):
    database = _database(mysql_url)
    study_file = write_study(tmp_path, image_folder, trials=1, epochs=1)
    with mysql.account(f"SELECT, INSERT, UPDATE ON {database}.*") as user:
        as_user = mysql.storage_url(database, username=user)
        status, _, err = run_cli(capsys, "run", study_file, "--storage", as_user, "--device", "cpu")
        assert status == 2 and "CREATE command denied" in err
        grant = _grant_shown(err)
        assert (
            grant
            == f"GRANT CREATE, ALTER, INDEX, REFERENCES ON {database}.* TO '{user}'@'127.0.0.1'"
        )
        assert sqlalchemy.inspect(sqlalchemy.create_engine(mysql_url)).get_table_names() == []

        mysql.execute(grant)
        status, _, err = run_cli(capsys, "run", study_file, "--storage", as_user, "--device", "cpu")
        assert status == 0, err


def test_a_session_that_takes_no_writes_is_refused_before_any(
    tmp_path, image_folder, mysql_url, capsys
):
    study_file = write_study(tmp_path, image_folder, trials=1, epochs=1)
    assert run_cli(capsys, "run", study_file, "--storage", mysql_url, "--create-only")[0] == 0
    created = optuna.load_study(study_name=NAME, storage=mysql_url).user_attrs
    # As a replica's sessions are: every transaction read-only
    read_only = f"{mysql_url}?init_command=SET%20SESSION%20TRANSACTION%20READ%20ONLY"
    status, _, err = run_cli(capsys, "run", study_file, "--storage", read_only, "--trials", "2")
    [line] = err.strip().splitlines()
    assert status == 2 and "READ ONLY transaction" in line and "at the primary" in line
    assert optuna.load_study(study_name=NAME, storage=mysql_url).user_attrs == created
