"""What a user who consumes a finished search meets: `-o` naming the study's storage or the
weights being scored is refused before anything is written, and export says what it could not
give (fewer runners-up than asked for, no complete trial, another study's weights)."""

from __future__ import annotations

import shutil
import uuid

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from search.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_cli(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def storage_named(path, study: str = "x") -> str:
    """A SQLite storage at `path`, whatever its suffix, holding one complete trial."""
    url = f"sqlite:///{path}"
    made = optuna.create_study(study_name=study, storage=url, direction="maximize")
    made.add_trial(create_trial(value=0.5, user_attrs={"config": {"lr": 0.1, "epochs": 1}}))
    return url


@pytest.mark.parametrize("command, name", [("trials", "studies.csv"), ("export", "studies.json")])
def test_an_output_that_is_the_storage_itself_is_refused(tmp_path, capsys, command, name):
    storage = tmp_path / name
    url = storage_named(storage)
    before = storage.read_bytes()
    status, out, err = run_cli(capsys, command, "--storage", url, "--study", "x", "-o", storage)
    assert status == 2 and out == ""
    assert f"-o {storage} is a SQLite database (a study storage)" in err
    assert "name another file" in err and len(err.strip().splitlines()) == 1
    assert storage.read_bytes() == before  # the study is still there
    assert storage.read_bytes().startswith(b"SQLite format 3\x00")


def test_evaluate_never_writes_its_page_over_the_weights_it_scores(small_search, tmp_path, capsys):
    [kept] = (small_search.images.parent / "checkpoints").glob("*/trial-*/weights.pt")
    weights = shutil.copy(kept, tmp_path / "weights.pt")
    before = weights.read_bytes()
    status, out, err = run_cli(
        capsys,
        "evaluate",
        weights,
        "--data",
        small_search.images,
        "--cache-dir",
        small_search.cache_dir,
        "--device",
        "cpu",
        "-o",
        weights,
    )
    assert status == 2 and out == ""  # refused before any image is scored
    assert f"-o {weights} is a weights or checkpoint file" in err
    assert weights.read_bytes() == before


def test_fewer_complete_trials_than_top_asks_for_is_said(small_search, capsys):
    complete = optuna.load_study(study_name=small_search.study, storage=small_search.url)
    count = len(complete.get_trials(states=(TrialState.COMPLETE,)))
    status, _, err = run_cli(
        capsys,
        "export",
        "--storage",
        small_search.url,
        "--study",
        small_search.study,
        "--top",
        count + 3,
    )
    assert status == 0
    assert (
        f"--top {count + 3} asked for {count + 3} trials, but study {small_search.study!r} has "
        f"{count} complete" in err
    )


def test_weights_of_another_study_of_the_same_name_are_said_to_be_anothers(
    small_search, tmp_path, capsys
):
    path, weights = tmp_path / "best.toml", tmp_path / "best.weights.pt"
    checkpoints = small_search.images.parent / "checkpoints"
    flags = ["--study", small_search.study, "-o", path, "--checkpoint-dir", checkpoints]
    assert run_cli(capsys, "export", "--storage", small_search.url, *flags)[0] == 0
    assert weights.is_file()
    # The same name in another storage: a study of its own, with an identity of its own
    url = f"sqlite:///{tmp_path / 'other.db'}"
    optuna.copy_study(
        from_study_name=small_search.study, from_storage=small_search.url, to_storage=url
    )
    other = optuna.load_study(study_name=small_search.study, storage=url)
    other.set_user_attr("study_id", uuid.uuid4().hex)
    status, _, err = run_cli(capsys, "export", "--storage", url, *flags)
    assert status == 0 and not weights.exists()
    assert f"of another study also named {small_search.study!r}" in err


@pytest.mark.parametrize("command", ["export", "kubernetes", "evaluate"])
def test_no_output_is_written_over_the_study_file_that_defines_the_search(
    tmp_path, capsys, command
):
    # export wrote its settings there, kubernetes its manifests, evaluate its page: the search's
    # definition gone, without a word
    url = storage_named(tmp_path / "s.db")
    study_file = tmp_path / "quick.toml"
    study_file.write_text('[study]\nname = "x"\n\n[data]\nsource = "imagenette-160"\n')
    before = study_file.read_bytes()
    argv = {
        "export": ["--storage", url, "--study", "x"],
        "kubernetes": [study_file, "--workers", "2", "--image", "hpsearch:latest"],
        "evaluate": [tmp_path / "w.pt", "--data", tmp_path],  # refused before either is read
    }[command]
    status, out, err = run_cli(capsys, command, *argv, "-o", study_file)
    assert status == 2 and out == ""
    assert f"-o {study_file} is a study file (it has a [study] table)" in err, err
    assert study_file.read_bytes() == before


def test_kubernetes_never_writes_its_manifests_over_a_study_s_storage(tmp_path, capsys):
    storage = tmp_path / "hpsearch.db"
    storage_named(storage)
    before = storage.read_bytes()
    study_file = tmp_path / "quick.toml"
    study_file.write_text('[study]\nname = "x"\n')
    argv = [study_file, "--workers", "2", "--image", "hpsearch:latest", "-o", storage]
    status, out, err = run_cli(capsys, "kubernetes", *argv)
    assert status == 2 and f"-o {storage} is a SQLite database (a study storage)" in err
    assert storage.read_bytes() == before


@pytest.mark.parametrize(
    "command, name, said",
    [
        ("report", "s.db", "is a SQLite database (a study storage)"),
        ("evaluate", "results.csv", "the confusion matrix is one HTML page; name a .html file"),
    ],
)
def test_a_page_is_refused_an_output_before_anything_is_made(tmp_path, capsys, command, name, said):
    # report made its artifacts folder, then refused the storage; evaluate wrote HTML as a CSV
    url = storage_named(tmp_path / "s.db")
    made = {path: path.read_bytes() for path in tmp_path.iterdir()}
    argv = {
        "report": ["--storage", url, "--study", "x"],
        "evaluate": [tmp_path / "w.pt", "--data", tmp_path],
    }[command]
    status, out, err = run_cli(capsys, command, *argv, "-o", tmp_path / name)
    assert status == 2 and said in err, err
    assert {path: path.read_bytes() for path in tmp_path.iterdir()} == made
