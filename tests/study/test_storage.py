"""Storage URLs: resolution, masking, and SQLite that several local workers can share."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import warnings
from collections import Counter

import optuna
import pytest
import sqlalchemy
from optuna.distributions import FloatDistribution

from search.errors import StorageError
from search.study.storage import open_storage, schema_raced, set_user_attrs
from search.url_secrets import masked


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://team:hunter2@db:5432/studies", "weird://team:hunter2@x"]
)
def test_printed_urls_never_show_the_password(url):
    assert "hunter2" not in masked(url) and "***" in masked(url)


def test_an_unsupported_url_names_what_works():
    with pytest.raises(StorageError, match="use sqlite:/// or postgresql"):
        open_storage("redis://localhost:6379")


def _ask_queued(url: str, asks: int) -> list[int]:
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="race", storage=open_storage(url))
    return [study.ask().number for _ in range(asks)]


def test_local_workers_on_sqlite_never_take_the_same_queued_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    study = optuna.create_study(study_name="race", storage=open_storage(url))
    for index in range(40):
        study.enqueue_trial({"x": float(index)})
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        taken = [
            number for numbers in pool.starmap(_ask_queued, [(url, 10)] * 4) for number in numbers
        ]
    assert len(taken) == 40 and not {n: c for n, c in Counter(taken).items() if c > 1}


def test_sqlite_reads_wait_for_no_writer(tmp_path):
    # A worker holds the write lock mid-transaction; the dashboard, status and the progress line
    # read meanwhile. Only transactions that write take the lock (BEGIN IMMEDIATE): a read that
    # took it too would wait out the 60 s busy timeout, then fail "database is locked".
    path = tmp_path / "s.db"
    storage = open_storage(f"sqlite:///{path}")
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.tell(study.ask({"x": FloatDistribution(0, 1)}), 0.5)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE studies SET study_name = 's' WHERE study_name = 's'")
    read: list = []
    reader = threading.Thread(
        target=lambda: read.extend(
            optuna.load_study(study_name="s", storage=open_storage(f"sqlite:///{path}")).trials
        )
    )
    reader.start()
    reader.join(timeout=10)
    waited_for_the_writer = reader.is_alive()
    writer.rollback()
    reader.join()
    assert not waited_for_the_writer and [trial.value for trial in read] == [0.5]


def test_a_trials_record_is_written_in_one_commit(pg_url):
    storage = open_storage(pg_url)
    trial = optuna.create_study(storage=storage).ask()
    commits: list[int] = []
    sqlalchemy.event.listen(storage.engine, "commit", lambda connection: commits.append(1))
    set_user_attrs(trial, {"a": 1, "b": [1, 2], "c": "three"})
    assert len(commits) == 1
    stored = storage.get_trial(trial._trial_id).user_attrs
    assert stored == trial.user_attrs == {"a": 1, "b": [1, 2], "c": "three"}


def _second_creation(url: str, statement: str) -> sqlalchemy.exc.DBAPIError:
    """The error of `statement` made a second time on the server at `url`, as a process that
    creates a schema another has just made meets it."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(statement))
        with pytest.raises(sqlalchemy.exc.DBAPIError) as caught, engine.begin() as connection:
            connection.execute(sqlalchemy.text(statement))
    finally:
        engine.dispose()
    return caught.value


TABLE = "CREATE TABLE studies (study_id INTEGER)"


@pytest.mark.parametrize(
    "url_fixture, statement",
    [
        # CI met this one: two first runs of one study, its enum type made by the other
        pytest.param(
            "pg_url",
            "CREATE TYPE studydirection AS ENUM ('MINIMIZE', 'MAXIMIZE')",
            marks=pytest.mark.postgres,
            id="postgres-enum",
        ),
        pytest.param("pg_url", TABLE, marks=pytest.mark.postgres, id="postgres-table"),
        pytest.param("mysql_url", TABLE, marks=pytest.mark.mysql, id="mysql-table"),
        pytest.param("sqlite_url", TABLE, id="sqlite-table"),
    ],
)
def test_a_schema_another_process_made_first_is_a_race_to_try_again(
    url_fixture, statement, request, tmp_path
):
    urls = {"sqlite_url": f"sqlite:///{tmp_path / 's.db'}"}
    url = urls.get(url_fixture) or request.getfixturevalue(url_fixture)
    assert schema_raced(_second_creation(url, statement))
