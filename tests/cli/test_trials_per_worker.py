"""`--trials-per-worker K` from the command line: refused unless a whole number of at least 1,
before anything is read or written, and given, it sets how many trials a worker trains at once,
over the study file's `[study] trials_per_worker`. The cluster launchers' own tests check that it
reaches their workers' command lines (tests/launch, tests/test_compose.py)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search import attrs
from search.cli import main
from tests.helpers.studies import write_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COMMANDS = {
    "run": ["run", "study.toml"],
    "worker": ["worker", "--study", "s"],
    "slurm": ["slurm", "study.toml", "--workers", "2", "--dry-run"],
    "kubernetes": ["kubernetes", "study.toml", "--workers", "2", "--image", "hpsearch:latest"],
}


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_value_is_refused_naming_the_flag_before_anything_is_written(
    command, value, tmp_path, capsys
):
    with pytest.raises(SystemExit) as exit:
        main([*COMMANDS[command], "--trials-per-worker", value])
    err = capsys.readouterr().err
    assert exit.value.code == 2
    assert "argument --trials-per-worker: " in err and value in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # the test's current folder (tests/conftest.py)


def fused_sizes(storage: str) -> list[list[int]]:
    """Each trial's `fused_trials` by epoch: how many trials shared its network."""
    trials = optuna.load_study(study_name="test-study", storage=storage).trials
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 2
    return [
        [epoch["fused_trials"] for epoch in trial.user_attrs[attrs.HISTORY]] for trial in trials
    ]


# How the trials are run (after `run --create-only` where it says worker), what the study file
# says, the flag, and the trials trained at once
LAUNCHES = {
    "run": (["run", "{study}"], 1, "2", 2),
    "worker --study, as a SLURM task joins": (["worker", "--study", "test-study"], 1, "2", 2),
    "worker overriding the study file": (["worker", "{study}"], 2, "1", 1),
}


@pytest.mark.parametrize("launch", LAUNCHES)
def test_the_flag_sets_how_many_trials_a_worker_trains_at_once(
    launch, tmp_path, image_folder, cache_dir, capsys
):
    argv, in_file, flag, expected = LAUNCHES[launch]
    # Two trials of one epoch, of one model, image size and batch size: one group when fused
    study = write_study(tmp_path, image_folder, trials=2, epochs=1, pruner='kind = "none"')
    study.write_text(
        study.read_text().replace("seed = 7", f"seed = 7\ntrials_per_worker = {in_file}")
    )
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    common = [
        "--storage", storage, "--device", "cpu", "--cache-dir", str(cache_dir),
        "--checkpoint-dir", str(tmp_path / "checkpoints"), "--no-progress",
    ]  # fmt: skip
    if argv[0] == "worker":
        assert main(["run", str(study), "--create-only", *common]) == 0
    command = [arg.format(study=study) for arg in argv]
    assert main([*command, *common, "--trials-per-worker", flag]) == 0, capsys.readouterr().err
    assert fused_sizes(storage) == [[expected], [expected]]
