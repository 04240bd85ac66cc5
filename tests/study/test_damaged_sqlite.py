"""A SQLite study file with a corrupted page is named as damaged, in one line that says what to do:
when a command opens it, when a worker starts or ends on it, and when a storage call reaches the
damage. Before, `status` and `run` died with Optuna's "invalid data in the commit" traceback, or a
search finished and the damage went unreported."""

from __future__ import annotations

import sqlite3
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from search.cli import main
from search.errors import StorageDamaged
from search.study.integrity import quick_check
from search.study.storage import check_sqlite_intact, open_storage
from tests.helpers.damaged_files import add_finished_trials, damage_a_middle_page
from tests.helpers.studies import write_study

NAME = "test-study"


@pytest.fixture
def study_file(tmp_path, image_folder, cache_dir):
    """A real study's SQLite file: created by `hpsearch run --create-only`, with 300 finished
    trials (about 2 MB), so that the page in the middle holds trial records."""
    study = write_study(tmp_path, image_folder, trials=301, epochs=1, pruner='kind = "none"')
    path = tmp_path / "studies.db"
    common = ["--storage", f"sqlite:///{path}", "--device", "cpu", "--cache-dir", str(cache_dir)]
    assert main(["run", str(study), "--create-only", "--no-progress", *common]) == 0
    add_finished_trials(f"sqlite:///{path}", NAME, 300)
    return path


def _one_line_naming(path, err: str) -> bool:
    return (
        err.count("\n") == 1
        and f"hpsearch: error: the SQLite file {path} is damaged (PRAGMA quick_check: " in err
        and ".recover" in err
        and "Traceback" not in err
    )


def _integrity_fails(path) -> bool:
    try:
        with sqlite3.connect(path) as connection:
            return connection.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
    except sqlite3.DatabaseError:
        return True


def test_a_healthy_file_passes_its_check(study_file, capsys):
    check_sqlite_intact(f"sqlite:///{study_file}")
    assert quick_check(study_file) == []
    assert main(["status", "--storage", f"sqlite:///{study_file}"]) == 0
    assert "300" in capsys.readouterr().out


def test_status_names_the_damage(study_file, capsys):
    damage_a_middle_page(study_file)
    assert _integrity_fails(study_file)
    capsys.readouterr()
    assert main(["status", "--storage", f"sqlite:///{study_file}"]) == 2
    assert _one_line_naming(study_file, capsys.readouterr().err)


def test_a_worker_refuses_to_start_on_a_damaged_file(study_file, cache_dir, capsys):
    damage_a_middle_page(study_file)
    capsys.readouterr()
    argv = ["worker", "--study", NAME, "--storage", f"sqlite:///{study_file}", "--device", "cpu"]
    assert main([*argv, "--cache-dir", str(cache_dir), "--no-progress"]) == 2
    assert _one_line_naming(study_file, capsys.readouterr().err)


def test_a_call_that_reaches_the_damage_names_it(study_file):
    # The file was whole when the command opened it, and was damaged while it ran
    storage = open_storage(f"sqlite:///{study_file}", create=False)
    study_id = storage.get_study_id_from_name(NAME)
    storage.engine.dispose()  # no page read before the damage is reused from memory
    damage_a_middle_page(study_file)
    with pytest.raises(StorageDamaged, match="is damaged") as raised:
        storage.get_all_trials(study_id)
    # What it replaces: Optuna's "invalid data in the commit, e.g. exceeding max length"
    assert isinstance(raised.value.__cause__, optuna.exceptions.StorageInternalError)


def test_a_search_during_which_the_file_is_damaged_ends_naming_it(
    study_file, cache_dir, tmp_path, capsys, one_torch_thread
):
    url = f"sqlite:///{study_file}"
    argv = ["worker", "--study", NAME, "--storage", url, "--device", "cpu", "--no-progress"]
    argv += ["--cache-dir", str(cache_dir), "--checkpoint-dir", str(tmp_path / "checkpoints")]
    status: list[int] = []
    worker = threading.Thread(target=lambda: status.append(main(argv)))
    worker.start()
    storage = open_storage(url, create=False)
    study_id = storage.get_study_id_from_name(NAME)
    # Once it trains its trial
    while not storage.get_all_trials(study_id, states=(TrialState.RUNNING,)):
        assert worker.is_alive()
        time.sleep(0.1)
    storage.engine.dispose()
    damage_a_middle_page(study_file)
    worker.join()
    assert status == [2]
    err = capsys.readouterr().err
    assert _one_line_naming(study_file, err.splitlines()[-1] + "\n")


def test_a_storage_naming_a_file_of_another_kind_says_so_not_damage(tmp_path, capsys):
    # `--storage sqlite:///quick.toml` for `studies/quick.toml`: no backup or .recover helps that
    wrong = tmp_path / "quick.toml"
    wrong.write_text('[study]\nname = "quick"\n')
    assert main(["status", "--storage", f"sqlite:///{wrong}"]) == 2
    err = capsys.readouterr().err
    assert f"{wrong} is not a SQLite database" in err and ".recover" not in err
    assert wrong.read_text() == '[study]\nname = "quick"\n'


@pytest.mark.parametrize("command", [["status"], ["trials", "--study", "x"]])
def test_an_empty_file_read_by_a_command_that_makes_no_storage_is_one_line(
    tmp_path, capsys, caplog, command
):
    """It said a new storage was made in it, which it is not, then that it held no studies."""
    path = tmp_path / "studies.db"
    path.touch()
    assert main([*command, "--storage", f"sqlite:///{path}"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "holds no studies" in err, err
    assert "its file is empty: if it held studies, it was cut short, and a backup" in err
    assert "new storage" not in caplog.text + err and path.stat().st_size == 0


def test_a_study_file_cut_to_nothing_is_said_to_be_empty_as_a_new_storage_is_made_in_it(
    tmp_path, image_folder, cache_dir, capsys, caplog
):
    """`> studies.db`, or a copy that failed, leaves a file of 0 bytes, which SQLite takes for a
    new database: `run` started the study again from trial 0 and said nothing."""
    study = write_study(tmp_path, image_folder, trials=1, epochs=1)
    path = tmp_path / "studies.db"
    path.touch()
    common = ["--storage", f"sqlite:///{path}", "--device", "cpu", "--cache-dir", str(cache_dir)]
    assert main(["run", str(study), "--create-only", "--no-progress", *common]) == 0
    said = f"storage file {path} is empty (0 bytes): a new storage is made in it; if it held"
    assert caplog.text.count(said) == 1, caplog.text
    caplog.clear()
    capsys.readouterr()
    assert main(["status", "--storage", f"sqlite:///{path}"]) == 0  # no longer empty
    assert "is empty" not in caplog.text + capsys.readouterr().err
