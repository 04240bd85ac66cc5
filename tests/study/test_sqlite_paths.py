"""A SQLite path SQLite cannot use is named for what it is, before anything is written: a folder,
a folder this process may not write. SQLite's own "unable to open database file" was reported as a
server that cannot be reached, and a healthy file in a read-only folder as a damaged one, with a
salvage to run."""

from __future__ import annotations

import sqlite3

import optuna
import pytest

from search.cli import main
from search.errors import StorageError
from search.study.storage import check_storage_url, open_storage
from tests.results.test_unwritable_storage import read_only


def test_a_folder_named_as_the_storage_is_refused(tmp_path):
    with pytest.raises(StorageError, match=f"names a folder, {tmp_path}: name a file in it, e.g. "):
        check_storage_url(f"sqlite:///{tmp_path}")


def test_a_storage_in_a_folder_that_cannot_be_written_is_refused_before_it_is_made(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    with read_only(folder), pytest.raises(StorageError, match="cannot be made: its folder"):
        open_storage(f"sqlite:///{folder / 'new.db'}")
    assert list(folder.iterdir()) == []


def test_a_study_in_a_folder_that_cannot_be_written_is_not_called_damaged(tmp_path, capsys):
    folder = tmp_path / "shared"
    folder.mkdir()
    url = f"sqlite:///{folder / 'studies.db'}"
    storage = open_storage(url)  # hpsearch keeps it in WAL mode
    optuna.create_study(study_name="s", storage=storage)
    storage.engine.dispose()  # the last connection gone: SQLite removes its -wal and -shm
    assert sorted(path.name for path in folder.iterdir()) == ["studies.db"]

    with read_only(folder):
        assert main(["status", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "cannot be read here: its folder" in err and "studies.db-shm" in err
    assert "damaged" not in err


def test_another_program_s_sqlite_file_is_never_made_a_storage(tmp_path, capsys):
    # `run --storage sqlite:///app.db` wrote Optuna's tables into an application's database
    app = tmp_path / "app.db"
    with sqlite3.connect(app) as connection:
        connection.execute("CREATE TABLE users (id INTEGER)")
    before = app.read_bytes()
    with pytest.raises(StorageError) as refused:
        open_storage(f"sqlite:///{app}")
    assert str(refused.value) == (
        f"SQLite file {app} holds another program's tables (users) and no study: hpsearch makes "
        "its storage only in a new file or one of its own; give storage another file"
    )
    assert app.read_bytes() == before
    # A file of Optuna's, or an empty one, is a storage as before
    optuna.create_study(study_name="s", storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    assert open_storage(f"sqlite:///{tmp_path / 's.db'}").get_all_studies()[0].study_name == "s"
