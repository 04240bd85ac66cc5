"""Flags whose value says nothing (an empty string from an unset shell variable, an empty list of
GPUs, a line break in a one-line setting) or that cannot act in the command they are given to
(`run --create-only --workers 4`, `run --device cpu --gpus 0`): one line, exit 2, naming the flag,
before anything is written. Each of these was once taken quietly: an empty --checkpoint-dir wrote
into the current folder, an empty --gpus trained on the CPU, an empty --host served the dashboard
to every network, an empty --python wrote a batch script whose every task failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.cli import main
from tests.helpers.cli import listing
from tests.helpers.studies import write_study

STORAGE = "sqlite:///studies.db"  # in the test's own folder (tests/conftest.py)

# argparse refuses these while it reads the command line: (argv, the flag the error names, a text
# the error holds). {study} is a study file, {data} an image folder.
REFUSED_BY_THE_PARSER = {
    "run --checkpoint-dir ''": ("run {study} --device cpu", ["--checkpoint-dir", ""], "is empty"),
    "run --cache-dir ''": ("run {study} --device cpu", ["--cache-dir", ""], "is empty"),
    "run with an empty study file": ("run --device cpu", ["", "--study", "x"], "is empty"),
    "run --data ''": ("run {study} --device cpu", ["--data", ""], "is empty"),
    "run --gpus ''": ("run {study}", ["--gpus", ""], "expected GPU numbers like 0,2"),
    "run --gpus ,": ("run {study}", ["--gpus", ","], "expected GPU numbers like 0,2"),
    "run --gpus 0,0": ("run {study}", ["--gpus", "0,0"], "names GPU 0 twice"),
    "run --gpus=-1": ("run {study}", ["--gpus=-1"], "expected GPU numbers like 0,2"),
    "train --checkpoint-dir ''": (
        "train --device cpu --data {data}",
        ["--checkpoint-dir", ""],
        "is empty",
    ),
    "train --cache-dir ' '": ("train --device cpu --data {data}", ["--cache-dir", " "], "is empty"),
    "train --config ''": ("train --device cpu --data {data}", ["--config", ""], "is empty"),
    "train --data ''": ("train --device cpu", ["--data", ""], "is empty"),
    "evaluate ''": ("evaluate --data {data}", [""], "is empty"),
    "report -o ''": ("report --study s", ["-o", ""], "is empty"),
    "export -o ''": ("export --study s", ["-o", ""], "is empty"),
    "trials -o ''": ("trials --study s", ["-o", ""], "is empty"),
    "dashboard --artifacts ''": ("dashboard", ["--artifacts", ""], "is empty"),
    "dashboard --host ''": ("dashboard", ["--host", ""], "is empty"),
    "grpc-proxy --host ''": ("grpc-proxy", ["--host", ""], "is empty"),
    "slurm --python ''": ("slurm {study} --workers 2", ["--python", ""], "is empty"),
    "slurm --partition ''": ("slurm {study} --workers 2", ["--partition", ""], "is empty"),
    "slurm --time with a line break": (
        "slurm {study} --workers 2",
        ["--time", "4:00:00\necho another line"],
        "must be one line",
    ),
    "slurm --sbatch with a line break": (
        "slurm {study} --workers 2",
        ["--sbatch=--qos=low\nhostname"],
        "must be one line",
    ),
    "kubernetes -o ''": ("kubernetes {study} --workers 1 --image r/h:1", ["-o", ""], "is empty"),
}

# The command's handler refuses these, before a study file is read or a storage opened
REFUSED_BY_THE_COMMAND = {
    "run --create-only --workers 2": (["--create-only", "--workers", "2"], "--workers"),
    "run --create-only --gpus 0": (["--create-only", "--gpus", "0"], "--gpus"),
    "run --create-only --workers-per-gpu 2": (
        ["--create-only", "--workers-per-gpu", "2"],
        "--workers-per-gpu",
    ),
    "run --create-only --compile": (["--create-only", "--compile"], "--compile"),
    "run --create-only --trials-per-worker 2": (
        ["--create-only", "--trials-per-worker", "2"],
        "--trials-per-worker",
    ),
    "run --device cpu --workers-per-gpu 2": (
        ["--device", "cpu", "--workers-per-gpu", "2"],
        "--workers-per-gpu places workers on GPUs, which --device cpu does not use",
    ),
    "run --device cpu --gpus 0": (
        ["--device", "cpu", "--gpus", "0"],
        "--gpus places workers on GPUs, which --device cpu does not use",
    ),
    "run --device cuda:1 --gpus 0": (
        ["--device", "cuda:1", "--gpus", "0"],
        "--gpus places workers on GPUs, which --device cuda:1 does not use",
    ),
}


@pytest.fixture
def made(tmp_path: Path, image_folder: Path) -> dict[str, str]:
    return {"study": str(write_study(tmp_path, image_folder)), "data": str(image_folder)}


@pytest.mark.parametrize("name", REFUSED_BY_THE_PARSER)
def test_a_flag_that_says_nothing_is_refused_naming_it(name, made, tmp_path, capsys):
    command, flag_and_value, expected = REFUSED_BY_THE_PARSER[name]
    argv = [*command.format(**made).split(" "), *flag_and_value, "--storage", STORAGE]
    if argv[0] in ("train", "evaluate", "kubernetes"):  # no --storage: they read none
        argv = argv[:-2]
    before = listing(tmp_path)

    with pytest.raises(SystemExit) as exited:
        main(argv)

    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith("hpsearch: error: argument "), err
    assert expected in err
    assert listing(tmp_path) == before


@pytest.mark.parametrize("name", REFUSED_BY_THE_COMMAND)
def test_a_run_flag_that_cannot_act_is_refused_before_a_study_is_made(name, made, tmp_path, capsys):
    flags, expected = REFUSED_BY_THE_COMMAND[name]
    before = listing(tmp_path)

    status = main(["run", made["study"], "--storage", STORAGE, *flags])

    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("hpsearch: error: "), err
    assert expected in err
    assert listing(tmp_path) == before  # no studies.db


def test_the_flags_still_act_where_they_apply(made, tmp_path, capsys):
    """--create-only without the workers' flags still creates the study."""
    assert main(["run", made["study"], "--storage", STORAGE, "--create-only"]) == 0
    assert (tmp_path / "studies.db").is_file()
