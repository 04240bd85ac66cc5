"""What the owner of one long study reads when they edit its file, change its budget or mistype a
command: each message names the input and a next step that works as written."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from search.api import studies
from search.locations import STORAGE_ENV
from search.results.status import format_status
from tests.helpers.cli import run_cli
from tests.helpers.studies import write_study

NAME = "test-study"


@pytest.fixture
def created(tmp_path, image_folder, cache_dir, capsys, monkeypatch, one_torch_thread):
    """A study whose file names its storage (no flag, no $HPSEARCH_STORAGE), created by `run
    --create-only`; returns the file, the storage URL and the flags every run here takes."""
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    url = f"sqlite:///{tmp_path / 'own.db'}"
    path = write_study(tmp_path, image_folder, trials=2, epochs=2, sampler='kind = "tpe"')
    path.write_text(path.read_text().replace("seed = 7", f'seed = 7\nstorage = "{url}"', 1))
    flags = ["--cache-dir", cache_dir, "--device", "cpu", "--no-progress", "--create-only"]
    status, _, err = run_cli(capsys, "run", path, *flags)
    assert status == 0, err
    return path, url, flags


def test_a_refused_edit_suggests_a_command_that_finds_the_study_in_the_files_storage(
    created, capsys, tmp_path
):
    path, url, flags = created
    edited = tmp_path / "edited.toml"
    edited.write_text(path.read_text().replace("epochs = 2", "epochs = 3"))
    status, _, err = run_cli(capsys, "run", edited, *flags)
    assert status == 2 and f"train.epochs: 2 in the study, 3 in {edited}" in err
    # The command it names, typed as it is: without --storage it looked in ./hpsearch.db
    suggested = f"hpsearch run --study {NAME} --storage {url}"
    assert f"`{suggested}`" in err
    status, _, err = run_cli(capsys, *suggested.split()[1:], *flags)
    assert status == 0, err


def test_a_new_kind_of_pruner_is_one_line_not_the_old_kinds_keys_as_unset(
    created, capsys, tmp_path
):
    path, _, flags = created
    edited = tmp_path / "edited.toml"
    text = path.read_text()
    old = 'kind = "median"\nwarmup_epochs = 0\nstartup_trials = 1'
    assert old in text
    edited.write_text(text.replace(old, 'kind = "none"'))
    status, _, err = run_cli(capsys, "run", edited, *flags)
    assert status == 2
    assert (
        "  pruner: {'kind': 'median', 'startup_trials': 1, 'warmup_epochs': 0} in the study, "
        f"{{'kind': 'none'}} in {edited}\n"
    ) in err
    assert "unset in" not in err  # no line asks for a key a pruner of kind none refuses


def test_a_budget_below_the_trials_spent_says_trials_is_the_whole_budget(created, capsys, caplog):
    _, url, flags = created
    study = optuna.load_study(study_name=NAME, storage=url)
    for value in (0.5, 0.6, 0.7):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=value))
    storage = ["--storage", url]
    status, _, err = run_cli(capsys, "run", "--study", NAME, "--trials", "2", *storage, *flags)
    assert status == 0, err
    assert (  # a warning line of the workers' log (pytest holds the log's records)
        f"--trials 2 sets the whole budget of study '{NAME}', not trials to add: it has spent 3 "
        "trials already, so no new trial starts; for 2 more, give --trials 5"
    ) in caplog.text
    # A sampler that models nothing within a budget of 2 draws no trial either: nothing said of it
    assert "will draw every trial at random" not in caplog.text
    caplog.clear()
    status, _, err = run_cli(capsys, "run", "--study", NAME, "--trials", "5", *storage, *flags)
    assert status == 0 and "whole budget" not in caplog.text
    assert "will draw every trial at random" in caplog.text  # TPE's 10 startup trials: all 5


def test_a_study_name_given_where_a_file_or_flag_goes_is_told_to_use_study(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    status, _, err = run_cli(capsys, "worker", "own")
    assert status == 2
    assert "own: cannot read the study file" in err and "give --study own" in err
    assert _refused_by_argparse(capsys, "status", "own").endswith(
        "unrecognized arguments: own; did you mean --study own? (see `hpsearch status --help`)\n"
    )
    # A mistyped flag's value is not taken for a study's name
    assert "--study" not in _refused_by_argparse(capsys, "status", "--jsn", "x")
    assert not list(Path(tmp_path).iterdir())  # nothing written


def test_a_flags_value_is_named_as_the_flags_not_the_files(capsys, created):
    path, _, flags = created
    # The file says 2: a line saying "3 in" it would send its user to look there in vain
    status, _, err = run_cli(capsys, "run", path, "--epochs", "3", *flags)
    assert status == 2 and "\n  train.epochs: 2 in the study, 3 from --epochs\n" in err


def test_status_keeps_its_columns_under_a_long_study_name():
    counts = dict.fromkeys(("complete", "pruned", "paused", "stopped", "fail", "running"), 0)
    rows = [
        {"study": name, "budget_spent": 1, "budget": 8, **counts, "waiting": 0, "retries": 0}
        | {"best_value": None, "best_trial": None, "running_trials": [], "best_config": None}
        for name in ("own", "resnet-imagenette-128px-ranger-vs-adamw-2026-12")
    ]
    header, *lines = format_status(rows).splitlines()
    # The budget column ends where its heading does, on every row
    assert {line.index("1/8") + 3 for line in lines} == {header.index("budget") + 6}


def test_a_library_error_raised_by_a_second_ctrl_c_is_an_interrupt_not_a_traceback(
    capsys, monkeypatch
):
    """torch.save cut by a Ctrl-C raises, as its zip writer closes, `RuntimeError: [enforce fail
    at inline_container.cc] unexpected pos`, which Python chains to the KeyboardInterrupt: the
    command ends as interrupted (130), not with both tracebacks. (The status command stands in
    for the worker's checkpoint write, which no test can cut at a chosen byte.)"""

    def a_write_cut_by_ctrl_c(*_: object, **__: object) -> None:
        try:  # raised as Python's own SIGINT handler raises it (xdist's workers ignore SIGINT)
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("unexpected pos 15917312 vs 15917208") from None

    monkeypatch.setattr(studies, "status", a_write_cut_by_ctrl_c)
    status, out, err = run_cli(capsys, "status")
    assert (status, out, err) == (130, "", "hpsearch: interrupted\n")

    def a_bug(*_: object, **__: object) -> None:
        raise RuntimeError("a bug keeps its traceback")

    monkeypatch.setattr(studies, "status", a_bug)
    with pytest.raises(RuntimeError, match="a bug keeps its traceback"):
        run_cli(capsys, "status")


def test_a_study_made_from_a_relative_data_path_is_joined_by_name_from_another_folder(
    tmp_path, image_folder, cache_dir, capsys, monkeypatch, one_torch_thread
):
    """`source = "images"` is read from the folder the study was created in; the study records it
    whole, so `run --study` from another folder (a second terminal, a SLURM job) finds it."""
    monkeypatch.chdir(image_folder.parent)
    path = write_study(tmp_path, Path(image_folder.name), trials=1, epochs=1)
    url = f"sqlite:///{tmp_path / 'own.db'}"
    flags = ["--storage", url, "--cache-dir", cache_dir, "--device", "cpu", "--create-only"]
    status, _, err = run_cli(capsys, "run", path, *flags)
    assert status == 0, err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    status, _, err = run_cli(capsys, "run", "--study", NAME, *flags)
    assert status == 0, err


def _refused_by_argparse(capsys, *argv: str) -> str:
    """Standard error of a command line that argparse refuses (it exits, status 2)."""
    with pytest.raises(SystemExit) as exited:
        run_cli(capsys, *argv)
    assert exited.value.code == 2
    return capsys.readouterr().err
