"""Storage URLs checked before anything connects, secrets masked wherever a URL is shown, and
new SQLite files that concurrent first runs both open."""

from __future__ import annotations

import socket
import time

import optuna
import pytest
import sqlalchemy
from optuna.storages._rdb import models

from search.cli import main
from search.errors import StorageError
from search.study import mysql
from search.study.storage import (
    check_reachable,
    check_storage_url,
    open_storage,
    require_existing_storage,
)
from search.url_secrets import masked

SECRET = "s3cr3t-Value"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://team:{SECRET}@db:5432/studies",
        f"postgresql+psycopg://adv@db/studies?password={SECRET}",
        f"postgresql+psycopg://adv@db/studies?sslmode=require&sslpassword={SECRET}",
        f"postgresql+psycopg://adv@db/studies?api_token={SECRET}&x=1",
        f"postgresql+psycopg://adv@db/studies?client_secret={SECRET}",
        f"postgresql+psycopg://adv@db:five/studies?PassWord={SECRET}",  # unparseable: a bad port
        f"weird://team:{SECRET}@x",
        f"postgresql+psycopg://team:{SECRET}@with@db/studies",
        f"postgresql+psycopg://team:Sup3r@{SECRET}@db/studies",  # SQLAlchemy's host: "{SECRET}@db"
        # SQLAlchemy reads "5432/studies?password=Sup3r" as the password and SECRET as the host
        f"postgresql+psycopg://db:5432/studies?password=Sup3r@{SECRET}",
        f"postgresql+psycopg://adv@db:5432/studies?password=Sup3r@{SECRET}",
        f"postgresql+psycopg://adv:Sup3r?token=x@{SECRET}/studies",
        f"postgresql+psycopg://adv@db/studies?sslmode=require&api_key={SECRET}",
    ],
)
def test_masked_hides_every_secret_a_url_carries(url):
    shown = masked(url)
    assert SECRET not in shown and "***" in shown


def test_masked_keeps_what_is_not_secret():
    shown = masked(f"postgresql+psycopg://adv:{SECRET}@db:5432/studies?sslmode=require&password=x")
    assert shown == "postgresql+psycopg://adv:***@db:5432/studies?sslmode=require&password=***"
    # Shown as written: an unencoded @ elsewhere, a slash in a password, SQLite's :memory:
    assert masked("postgresql://u:p@h/db?application_name=me@work") == (
        "postgresql://u:***@h/db?application_name=me@work"
    )
    assert masked("postgresql://adm@server:pa/ss@h/db") == "postgresql://adm@server:***@h/db"
    assert masked("sqlite:///:memory:") == "sqlite:///:memory:"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://localhost:6379", "unsupported storage driver 'redis'.*supported drivers: sqlite"),
        ("postgresql+psycopg4://root@h/db", "unsupported storage driver 'postgresql\\+psycopg4'"),
        ("mysql://root@h/db", "needs the mysql\\+mysqldb driver.*pip install mysqlclient"),
        ("postgresql+psycopg://root@127.0.0.1:five/db", "port .* is not a number"),
        ("postgresql+psycopg://root@127.0.0.1:70000/db", "1 to 65535, but got 70000"),
        ("no url at all", "malformed storage URL"),
        ("sqlite:///no/such/folder/x.db", "folder of SQLite storage .* does not exist"),
        (f"postgresql://u:Sup3r@{SECRET}@h/db", "ambiguous: percent-encode an @ .* as %40"),
        (f"postgresql://h:5432/db?password=a@{SECRET}", "ambiguous"),
        # SQLAlchemy logs in to host "ss" with password "p"; the rest was the database's name
        (f"postgresql://u:p@ss/{SECRET}@h/db", "ambiguous: percent-encode an @"),
        ("sqlite://rel.db", "names 'rel.db' as a host.*three slashes.*sqlite:///rel.db or "),
        # The path after the host kept: it said sqlite:///tmp
        ("sqlite://tmp/s/x.db", "sqlite:///tmp/s/x.db or sqlite:////tmp/s/x.db$"),
        ("sqlite://", "in-memory SQLite database.*name a file"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:///file::memory:?uri=true", "in-memory"),
        ("sqlite:///file:x?mode=memory&uri=true", "in-memory"),
    ],
)
def test_a_bad_url_is_refused_before_connecting(url, message):
    with pytest.raises(StorageError, match=message) as caught:
        check_storage_url(url)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p%40ss@Db.Example.com/x",
        "postgresql://u:p@[::1]:5432/db",
        "postgresql://user@server:pass@host/db",  # Azure's user@server names
        "postgresql://u:pa/ss@h/db",  # SQLAlchemy ends a password at its @, past a slash
        "postgresql://u:p@h/db?application_name=me@work",
        "postgresql://u:a%3Fb@h/db",  # a ? percent-encoded, as the ambiguous URL's message asks
        "postgresql://u:p%40ss%3Aw%2Frd%25x%23%3F@h/db",  # p@ss:w/rd%x#? encoded throughout
        "sqlite:////tmp/x@y.db",
        "grpc://127.0.0.1:13000",
    ],
)
def test_a_url_sqlalchemy_reads_as_written_passes(url):
    check_storage_url(url)


def test_a_password_cut_short_at_an_unencoded_at_is_not_shown_in_part():
    # SQLAlchemy reads "p" as the password, SECRET as the host and "w" as its port
    with pytest.raises(StorageError) as caught:
        check_storage_url(f"postgresql+psycopg://alice:p@{SECRET}:w/rd@127.0.0.1:5432/db")
    assert "ambiguous: percent-encode an @" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_an_unreachable_grpc_proxy_is_named_at_once():
    pytest.importorskip("grpc")
    started = time.monotonic()
    with pytest.raises(StorageError, match="cannot reach storage grpc://127.0.0.1:1: no gRPC"):
        open_storage("grpc://127.0.0.1:1", create=False)
    with pytest.raises(StorageError, match="within 0.5 s"):
        check_reachable("grpc://127.0.0.1:1", wait_seconds=0.5)
    assert time.monotonic() - started < 10


def test_plain_postgresql_means_the_driver_we_ship():
    assert check_storage_url("postgresql://root@h/db").drivername == "postgresql+psycopg"


def test_an_unsupported_url_is_refused_by_open_storage_too():
    with pytest.raises(StorageError, match="supported drivers: sqlite"):
        open_storage("redis://localhost:6379")


def test_a_missing_sqlite_file_is_refused_by_name_and_not_created(tmp_path):
    path = tmp_path / "typo.db"
    with pytest.raises(
        StorageError, match=f"{path} does not exist.*made by `hpsearch run` or `slurm`"
    ):
        require_existing_storage(f"sqlite:///{path}")
    assert not path.exists()


def test_an_existing_sqlite_file_passes(tmp_path):
    url = f"sqlite:///{tmp_path / 'here.db'}"
    open_storage(url)
    assert require_existing_storage(url).database == str(tmp_path / "here.db")


def test_an_existing_sqlite_file_named_by_sqlites_uri_form_passes(tmp_path):
    open_storage(f"sqlite:///{tmp_path / 'here.db'}")
    for url in (f"sqlite:///file:{tmp_path / 'here.db'}?uri=true", "sqlite:///file:here.db?uri=1"):
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(tmp_path)
            open_storage(url, create=False)  # it used to look for a file called "file:..."


def test_in_memory_sqlite_holds_no_study_to_read():
    with pytest.raises(StorageError, match="in-memory"):
        require_existing_storage("sqlite://")


def test_a_schema_another_process_is_creating_meanwhile_is_taken_as_it_is(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    other_process = sqlalchemy.create_engine(url)
    studies = models.StudyModel.__table__
    raced = []

    def created_by_the_other_process_first(table, connection, **kwargs) -> None:
        if not raced:  # once: the other process's own CREATE fires this event too
            raced.append(table.name)
            table.create(other_process)  # between Optuna's "is it missing?" and its CREATE TABLE

    sqlalchemy.event.listen(studies, "before_create", created_by_the_other_process_first)
    try:
        storage = open_storage(url)
    finally:
        sqlalchemy.event.remove(studies, "before_create", created_by_the_other_process_first)
    assert raced == ["studies"]
    optuna.create_study(study_name="both", storage=storage)
    assert [study.study_name for study in optuna.get_all_study_summaries(storage)] == ["both"]


def _tables(url: str) -> list[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        return sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_reading_a_database_without_studies_refuses_and_writes_no_table(pg_url):
    with pytest.raises(StorageError, match="holds no studies.*made by `hpsearch run` or `slurm`"):
        open_storage(pg_url, create=False)
    assert _tables(pg_url) == []
    open_storage(pg_url)  # what run does: create it
    assert "studies" in _tables(pg_url)
    open_storage(pg_url, create=False)


def test_reading_an_empty_sqlite_file_refuses_and_writes_no_table(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(StorageError, match="holds no studies"):
        open_storage(f"sqlite:///{path}", create=False)
    assert path.stat().st_size == 0


@pytest.mark.parametrize("command", ["status", "run"])
def test_a_mysql_url_at_a_port_of_another_server_is_named_within_the_greeting_wait(
    command, monkeypatch, capsys
):
    # PyMySQL waited for a greeting PostgreSQL never sends, until PostgreSQL gave up (a minute),
    # then said "Lost connection to MySQL server during query"
    monkeypatch.setattr(mysql, "GREETING_SECONDS", 0.5)
    silent = socket.create_server(("127.0.0.1", 0))  # takes the connection and says nothing
    port = silent.getsockname()[1]
    url = f"mysql+pymysql://root@127.0.0.1:{port}/x"
    argv = {"status": ["status"], "run": ["run", "--study", "x", "--device", "cpu"]}[command]
    started = time.monotonic()
    with silent:
        status = main([*argv, "--storage", url])
    err = capsys.readouterr().err
    assert status == 2 and time.monotonic() - started < 10, err
    assert f"the server at 127.0.0.1:{port} sent nothing within 0.5 s, where a MySQL" in err
