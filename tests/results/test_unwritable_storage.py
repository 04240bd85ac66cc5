"""A storage that refuses this process's writes, refused for real: a PostgreSQL role that may read
but not write, a server session that takes no writes, a SQLite file this process may only read;
and a role that may not even read, named as such with its GRANT, not as a server not reached.

`run` and `worker` stop with one line naming who may not write what, and the fix, before the data
is decoded or anything written; `report` and `export` still give a reader their page and settings,
and say in one warning that the study's note in the dashboard goes without them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import optuna
import optuna_dashboard
import psycopg
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

import search
from search.study.optuna_compat import optuna_tables
from search.study.storage import open_storage
from search.study.writable import check_may_create, refused_write
from tests.helpers import postgres
from tests.helpers.cli import listing, run_cli
from tests.helpers.dashboard import free_port
from tests.helpers.images import make_image_folder
from tests.helpers.studies import write_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Reader(NamedTuple):
    role: str
    url: str  # the storage URL as the role
    database: str  # a libpq URL of the database as the test's own role, which owns it


@contextmanager
def reader_role(pg_url: str) -> Iterator[Reader]:
    """A role of a unique name (tests run in parallel) that may log in to the database of `pg_url`
    and read its tables as they are now, and nothing more; dropped after."""
    role = f"hpsearch_reader_{uuid.uuid4().hex[:10]}"
    name = make_url(pg_url).database
    database = postgres.server_url(database=name)
    with postgres.connect(autocommit=True) as connection:
        connection.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute(f'GRANT CONNECT ON DATABASE "{name}" TO "{role}"')
            connection.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
            connection.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
        url = make_url(pg_url).set(username=role).render_as_string(hide_password=False)
        yield Reader(role, url, database)
    finally:
        with psycopg.connect(database, autocommit=True) as connection:
            # The commands ran in this process, whose pooled connections may still be open
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            connection.execute(f'DROP OWNED BY "{role}"')  # its grants, the database's included
            connection.execute(f'DROP ROLE "{role}"')


@pytest.fixture
def reader(pg_url, small_search) -> Iterator[Reader]:
    """A fresh database holding the small search's study, as the project made it, and a role that
    may only read it."""
    optuna.copy_study(
        from_study_name=small_search.study, from_storage=small_search.url, to_storage=pg_url
    )
    with reader_role(pg_url) as made:
        yield made


def as_owner(reader: Reader, *statements: str) -> None:
    with psycopg.connect(reader.database, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


def stored(url: str, name: str) -> tuple[dict, dict, int]:
    """What a refused command must leave as it was: the study's attributes and trial count."""
    storage = optuna.storages.RDBStorage(url)
    study_id = storage.get_study_id_from_name(name)
    return (
        storage.get_study_user_attrs(study_id),
        storage.get_study_system_attrs(study_id),  # the dashboard's note, artifacts
        len(storage.get_all_trials(study_id, deepcopy=False)),
    )


def study_file(small_search) -> Path:
    return small_search.images.parent / f"{small_search.study}.toml"


@pytest.mark.parametrize(
    "command",
    ["run {file} --trials 5", "run --study {study} --trials 5", "worker --study {study}"],
    ids=["run a study file", "run --study", "worker --study"],
)
def test_a_role_that_may_only_read_is_refused_before_run_decodes_or_writes(
    reader, small_search, pg_url, tmp_path, capsys, command
):
    before, files = stored(pg_url, small_search.study), listing(tmp_path)
    argv = command.format(file=study_file(small_search), study=small_search.study).split()

    status, out, err = run_cli(capsys, *argv, "--device", "cpu", "--storage", reader.url)

    assert status == 2, err
    assert "Traceback" not in out + err
    [line] = err.strip().splitlines()
    assert line.startswith("hpsearch: error: storage ") and "refuses writes" in line
    assert f"role {reader.role!r} may not INSERT into table 'studies'" in line
    assert f"GRANT INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {reader.role}" in line
    assert stored(pg_url, small_search.study) == before  # no budget set, no trial made
    assert listing(tmp_path) == files  # nothing decoded into the cache, no checkpoint folder


def test_report_and_export_give_a_reader_their_files_and_warn_once_that_no_note_is_attached(
    reader, small_search, pg_url, tmp_path, capsys
):
    before = stored(pg_url, small_search.study)

    status, out, err = run_cli(
        capsys, "report", "--study", small_search.study, "-o", "r.html", "--storage", reader.url
    )

    assert status == 0, err
    assert "<html" in (tmp_path / "r.html").read_text()
    assert not (tmp_path / "artifacts").exists()  # the dashboard's copy is not made
    [warning] = err.strip().splitlines()
    assert warning.startswith("hpsearch: warning: r.html is not attached to study 'factors' ")
    assert f"role {reader.role!r} may not INSERT into table 'study_system_attributes'" in warning

    status, out, err = run_cli(
        capsys,
        *("export", "--study", small_search.study, "-o", "best.json", "--storage", reader.url),
        *("--checkpoint-dir", small_search.images.parent / "checkpoints"),
    )

    assert status == 0, err
    assert (tmp_path / "best.json").is_file() and (tmp_path / "best.weights.pt").is_file()
    [warning, wrote] = lines_but_the_weights_epoch(err)
    assert warning.startswith("hpsearch: warning: the exported settings are not shown on the note")
    assert "may not INSERT into table 'study_system_attributes'" in warning
    assert wrote.startswith("wrote trial ")
    assert stored(pg_url, small_search.study) == before


def lines_but_the_weights_epoch(err: str) -> list[str]:
    """Standard error's lines but export's about the weights' epoch, said where the best trial's
    best epoch came before its last (tests/results/test_export.py)."""
    return [line for line in err.strip().splitlines() if "weights are its last epoch's" not in line]


def test_the_api_gives_a_reader_the_page_and_settings_with_the_commands_warnings(
    reader, small_search, pg_url, tmp_path, capsys
):
    before = stored(pg_url, small_search.study)

    report = search.write_report(small_search.study, tmp_path / "r.html", storage=reader.url)

    assert (tmp_path / "r.html").read_text(encoding="utf-8") == report.html
    assert not (tmp_path / "artifacts").exists()
    out, err = capsys.readouterr()
    [warning] = err.strip().splitlines()
    assert out == "" and warning.startswith(f"hpsearch: warning: {tmp_path / 'r.html'} is not")
    assert "may not INSERT into table 'study_system_attributes'" in warning

    best = search.export_best(
        small_search.study,
        storage=reader.url,
        checkpoint_dir=small_search.images.parent / "checkpoints",
    )

    assert best["provenance"]["study"] == small_search.study
    out, err = capsys.readouterr()
    [warning] = lines_but_the_weights_epoch(err)
    assert out == "" and "the exported settings are not shown on the note" in warning
    assert stored(pg_url, small_search.study) == before


def test_the_grants_the_refusal_names_are_the_ones_the_role_needs(
    reader, small_search, tmp_path, capsys
):
    # What the warning tells a user to run is what is run here
    status, _, err = run_cli(
        capsys, "report", "--study", small_search.study, "-o", "r.html", "--storage", reader.url
    )
    grants = re.findall(r"`(GRANT [^`]+)`", err)
    assert status == 0 and len(grants) == 2, err

    as_owner(reader, *grants)

    assert refused_write(open_storage(reader.url, create=False)) is None  # every table, sequence
    status, _, err = run_cli(
        capsys, "report", "--study", small_search.study, "-o", "r.html", "--storage", reader.url
    )
    assert status == 0 and "warning" not in err, err
    study = optuna.load_study(study_name=small_search.study, storage=reader.url)
    assert "## Report" in optuna_dashboard.get_note(study)
    assert (tmp_path / "artifacts").is_dir()


def test_a_session_that_takes_no_writes_is_named_as_such(reader, small_search, capsys):
    as_owner(
        reader,
        f'GRANT INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO "{reader.role}"',
        f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{reader.role}"',
        f'ALTER ROLE "{reader.role}" SET default_transaction_read_only = on',
    )

    status, _, err = run_cli(
        capsys, "worker", "--study", small_search.study, "--device", "cpu", "--storage", reader.url
    )

    assert status == 2, err
    [line] = err.strip().splitlines()
    assert "transaction_read_only is on" in line and "use a role that can write" in line


def test_run_into_an_empty_database_the_role_may_not_create_tables_in(
    pg_url, small_search, tmp_path, capsys
):
    files = listing(tmp_path)
    with reader_role(pg_url) as reader:
        # PostgreSQL 15 and later grant no one CREATE on public; an older server did
        as_owner(reader, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")

        status, out, err = run_cli(
            capsys, "run", study_file(small_search), "--device", "cpu", "--storage", reader.url
        )

    assert status == 2, err
    assert "Traceback" not in out + err
    [line] = err.strip().splitlines()
    assert f"role {reader.role!r} may not create tables in schema 'public'" in line
    assert f"GRANT CREATE ON SCHEMA public TO {reader.role}" in line
    with psycopg.connect(reader.database) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert tables == (0,)  # no Optuna tables made
    assert listing(tmp_path) == files  # nothing decoded


def test_a_role_that_may_not_even_read_is_told_the_grant_that_lets_it(pg_url, tmp_path, capsys):
    optuna.create_study(study_name="s", storage=pg_url, direction="maximize")
    data = make_image_folder(tmp_path / "data", classes=2, train_per_class=2, val_per_class=1)
    study = write_study(tmp_path, data)
    with reader_role(pg_url) as reader:
        as_owner(reader, f'REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM "{reader.role}"')
        grants = set()
        for command in (["status"], ["run", study, "--device", "cpu"]):
            status, out, err = run_cli(capsys, *command, "--storage", reader.url)

            assert status == 2, err
            assert "Traceback" not in out + err
            [line] = err.strip().splitlines()  # the server was reached: no "cannot reach"
            assert line.startswith(f"hpsearch: error: storage {reader.url} refuses reads: ")
            assert f"role {reader.role!r} may not read table " in line
            grants.update(re.findall(r"`(GRANT [^`]+)`", line))
        assert grants == {f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader.role}"}

        as_owner(reader, *grants)

        status, out, err = run_cli(capsys, "status", "--storage", reader.url)
        assert status == 0 and out.splitlines()[1].split()[0] == "s", out + err  # its row
        status, _, err = run_cli(capsys, "run", study, "--device", "cpu", "--storage", reader.url)
        assert status == 2 and "refuses writes" in err, err  # reads pass; writes are named next


def refused(capsys, url: str, *commands: list, refusal: str) -> set[str]:
    """Run each of `commands` on the storage at `url`; each must stop with one line saying the
    storage refuses `refusal` (not that it cannot be reached, nor that it holds nothing). Returns
    the GRANTs the lines name."""
    grants = set()
    for command in commands:
        status, out, err = run_cli(capsys, *command, "--storage", url)

        assert status == 2, err
        assert "Traceback" not in out + err
        [line] = err.strip().splitlines()
        assert line.startswith(f"hpsearch: error: storage {url} refuses {refusal}: "), line
        grants.update(re.findall(r"`(GRANT [^`]+)`", line))
    return grants


def storages(reader: Reader) -> list[str]:
    """The schemas of the reader's database that hold Optuna's tables."""
    with psycopg.connect(reader.database) as connection:
        found = connection.execute("SELECT schemaname FROM pg_tables WHERE tablename = 'studies'")
        return sorted(schema for (schema,) in found)


def test_a_role_that_may_not_connect_is_told_the_grant_and_not_waited_for(pg_url, tmp_path, capsys):
    optuna.create_study(study_name="s", storage=pg_url, direction="maximize")
    database = make_url(pg_url).database
    with reader_role(pg_url) as reader:
        as_owner(reader, f'REVOKE CONNECT ON DATABASE "{database}" FROM PUBLIC, "{reader.role}"')
        worker = ["worker", "--study", "s", "--device", "cpu", "--wait-for-storage", "30"]
        started = time.monotonic()

        grants = refused(capsys, reader.url, ["status"], worker, refusal="connections")

        # A permanent refusal, though the server gives it no SQLSTATE: no outage waited out
        assert time.monotonic() - started < 10
        assert grants == {f"GRANT CONNECT ON DATABASE {database} TO {reader.role}"}
        as_owner(reader, *grants)
        status, out, err = run_cli(capsys, "status", "--storage", reader.url)
        assert status == 0 and out.splitlines()[1].split()[0] == "s", out + err


@pytest.mark.parametrize("schema", ["s", "public"])
def test_a_role_that_may_not_use_the_tables_schema_is_told_the_grant_not_that_none_exist(
    pg_url, tmp_path, capsys, schema
):
    """Tables in a schema of their own (search_path=s,public in the URL), or in public once USAGE
    on it is revoked: PostgreSQL hides them from the role as if there were none."""
    data = make_image_folder(tmp_path / "data", classes=2, train_per_class=2, val_per_class=1)
    study = write_study(tmp_path, data)
    owners = pg_url + ("?options=-csearch_path%3Ds" if schema == "s" else "")
    with reader_role(pg_url) as reader:
        as_owner(reader, "CREATE SCHEMA IF NOT EXISTS s")
        optuna.create_study(study_name="s", storage=owners, direction="maximize")
        if schema == "s":
            url = reader.url + "?options=-csearch_path%3Ds,public"
            # where `run` made a second storage, empty, once it found none in s
            as_owner(reader, f'GRANT CREATE ON SCHEMA public TO "{reader.role}"')
        else:
            url = reader.url
            as_owner(reader, f'REVOKE USAGE ON SCHEMA public FROM PUBLIC, "{reader.role}"')
        as_owner(reader, f'GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO "{reader.role}"')
        commands = (["status"], ["worker", "--study", "s", "--device", "cpu"], ["run", study])

        grants = refused(capsys, url, *commands, refusal="reads")
        proxy = subprocess.run(  # it would serve (and make a second storage) for good before
            [
                sys.executable,
                "-m",
                "search",
                "grpc-proxy",
                "--storage",
                url,
                "--port",
                str(free_port()),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert grants == {f"GRANT USAGE ON SCHEMA {schema} TO {reader.role}"}
        assert proxy.returncode == 2 and f"`{[*grants][0]}`" in proxy.stderr, proxy.stderr
        assert storages(reader) == [schema]  # and `run` made no second one, in public
        as_owner(reader, *grants)
        status, out, err = run_cli(capsys, "status", "--storage", url)
        assert status == 0 and out.splitlines()[1].split()[0] == "s", out + err


def test_run_into_an_empty_database_whose_schema_the_role_may_not_use(pg_url, tmp_path, capsys):
    data = make_image_folder(tmp_path / "data", classes=2, train_per_class=2, val_per_class=1)
    study = write_study(tmp_path, data)
    with reader_role(pg_url) as reader:
        as_owner(reader, f'REVOKE USAGE, CREATE ON SCHEMA public FROM PUBLIC, "{reader.role}"')

        grants = refused(capsys, reader.url, ["run", study, "--device", "cpu"], refusal="writes")

        assert grants == {f"GRANT USAGE, CREATE ON SCHEMA public TO {reader.role}"}
        as_owner(reader, *grants)
        check_may_create(reader.url)  # what `run` asks before it decodes the data
        open_storage(reader.url)  # creates Optuna's tables
        assert storages(reader) == ["public"]


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` read-only for this process: by its permissions, or, for root, whom permissions do
    not stop, as an immutable file (ext4 and most Linux file systems)."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"root cannot make a read-only file here: chattr +i: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.fixture
def read_only_sqlite(small_search, tmp_path) -> Iterator[str]:
    """A SQLite file holding the project's study, as Optuna writes one (a rollback journal, not
    WAL), that this process may only read."""
    path = tmp_path / "shared" / "studies.db"
    path.parent.mkdir()
    url = f"sqlite:///{path}"
    optuna.copy_study(
        from_study_name=small_search.study, from_storage=small_search.url, to_storage=url
    )
    with read_only(path):
        yield url


def test_a_read_only_sqlite_file_is_read_reported_and_refused_to_workers(
    read_only_sqlite, small_search, tmp_path, capsys
):
    files = listing(tmp_path)

    status, out, err = run_cli(capsys, "status", "--storage", read_only_sqlite)
    assert status == 0 and small_search.study in out, err

    status, _, err = run_cli(
        capsys,
        "worker",
        "--study",
        small_search.study,
        "--device",
        "cpu",
        "--storage",
        read_only_sqlite,
    )
    assert status == 2, err
    [line] = err.strip().splitlines()
    assert "studies.db is read-only for this process" in line and "refuses writes" in line
    assert listing(tmp_path) == files

    status, _, err = run_cli(
        capsys,
        "report",
        "--study",
        small_search.study,
        "-o",
        "r.html",
        "--storage",
        read_only_sqlite,
    )
    assert status == 0, err
    [warning] = err.strip().splitlines()
    assert warning.startswith("hpsearch: warning: r.html is not attached")
    assert "read-only for this process" in warning
    assert listing(tmp_path) == files | {"r.html"}  # no artifacts/ beside the file, nor here


def test_a_sqlite_file_its_url_opens_read_only_is_told_to_leave_mode_ro_out(
    small_search, tmp_path, capsys
):
    """SQLite's URI parameter mode=ro refuses writes as a read-only file does; the file itself is
    writable, so the fix is the URL's, not the file's permissions."""
    path = tmp_path / "studies.db"
    optuna.copy_study(
        from_study_name=small_search.study,
        from_storage=small_search.url,
        to_storage=f"sqlite:///{path}",
    )
    url = f"sqlite:///file:{path}?mode=ro&uri=true"
    worker = ["worker", "--study", small_search.study, "--device", "cpu", "--storage", url]
    status, _, err = run_cli(capsys, *worker)
    assert status == 2, err
    [line] = err.strip().splitlines()
    assert "opened read-only by its URL (mode=ro): leave mode=ro out" in line


def test_the_tables_asked_about_are_the_tables_optuna_makes(tmp_path):
    """optuna_tables reads Optuna's private models: a release that renamed or added a table would
    leave a privilege unasked."""
    storage = open_storage(f"sqlite:///{tmp_path / 'new.db'}")
    with storage.engine.connect() as connection:
        made = set(sqlalchemy.inspect(connection).get_table_names())

    assert made - set(optuna_tables()) == {"version_info", "alembic_version"}
    assert {"studies", "trials", "study_system_attributes"} <= set(optuna_tables())
