"""One study, one truth: its identity keys its files, its settings and budget live in the storage,
and nothing read from the storage (a path) is trusted to name a file."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from search.cli import main
from search.launch.local import launch
from search.results.status import study_status
from search.run import trial_files
from search.run.study_data import fingerprint, load_study_data
from search.run.worker import WorkerOptions, run_worker
from search.study.opening import open_study
from search.study.recorded import study_id
from search.study.retries import queue_retry
from search.study.space import suggest
from search.study.storage import open_storage
from search.studyfile import load_study_config
from search.studyfile.train_file import read_settings
from tests.helpers.damaged_files import damage_a_tensor_in_place
from tests.helpers.studies import write_study
from trainer.checkpoint import CheckpointPolicy
from trainer.loop import train
from trainer.weights import WEIGHTS_NAME, load_weights

NAME = "test-study"


def run_cli(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def options(url: str, cache_dir: Path, **changes) -> WorkerOptions:
    return WorkerOptions(url, "cpu", cache_dir, progress=False, **changes)


def load(url: str) -> optuna.Study:
    return optuna.load_study(study_name=NAME, storage=url)


@pytest.mark.parametrize("together", [False, True], ids=["one-after-the-other", "at-once"])
def test_two_studies_of_one_name_keep_and_export_their_own_weights(
    tmp_path, image_folder, cache_dir, capsys, together, one_torch_thread
):
    config = load_study_config(write_study(tmp_path, image_folder, trials=2, epochs=1))
    urls = [f"sqlite:///{tmp_path / f'{side}.db'}" for side in ("a", "b")]
    runs = [threading.Thread(target=launch, args=(config, options(url, cache_dir))) for url in urls]
    for run in runs:
        run.start()
        if not together:
            run.join()
    for run in runs:
        run.join()
    folders = sorted(path.name for path in (tmp_path / "user-checkpoints").iterdir())
    assert folders == sorted(f"{NAME}-{study_id(load(url))[:8]}" for url in urls)
    assert all(load(url).metric_names == ["val_top1"] for url in urls)
    for index, url in enumerate(urls):
        output = tmp_path / f"best-{index}.toml"
        assert run_cli(capsys, "export", "--storage", url, "--study", NAME, "-o", output)[0] == 0
        weights = load_weights(output.with_name(f"best-{index}.weights.pt"))
        best = load(url).best_trial
        assert weights.owner["study_id"] == study_id(load(url))
        assert weights.owner["trial"] == best.number and weights.owner["params"] == best.params
        assert weights.config["lr"] == best.user_attrs["config"]["lr"]


def test_a_worker_joins_from_the_study_name_alone_and_stops_at_the_stored_budget(
    tmp_path, image_folder, cache_dir, capsys, one_torch_thread
):
    # The file says 12 trials of 3 epochs; `hpsearch run --epochs 1 --trials 4` created the study
    path = write_study(tmp_path, image_folder, trials=12, epochs=3)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    created = load_study_config(path).with_overrides(epochs=1, trials=4)
    data = load_study_data(created, cache_dir, progress=False)
    open_study(created, open_storage(url), fingerprint(created, data))
    flags = ["--storage", url, "--cache-dir", cache_dir, "--device", "cpu", "--no-progress"]

    status, _, err = run_cli(capsys, "worker", path, *flags)
    assert status == 2
    assert f"  train.epochs: 1 in the study, 3 in {path}\n" in err
    # The storage it was found in: a command without the study file would look elsewhere
    assert f"`hpsearch worker --study {NAME} --storage {url}`" in err and not load(url).trials

    status, _, err = run_cli(capsys, "worker", "--study", NAME, "--data", image_folder, *flags)
    assert status == 0, err
    trials = load(url).trials
    assert len(trials) == 4 and "worker finished 4 trial(s)" in err
    assert all(trial.user_attrs["config"]["epochs"] == 1 for trial in trials)


def test_run_trials_raises_the_budget_every_worker_reads(
    tmp_path, image_folder, cache_dir, capsys, one_torch_thread
):
    path = write_study(tmp_path, image_folder, trials=1, epochs=1)
    flags = ["--storage", f"sqlite:///{tmp_path / 's.db'}", "--cache-dir", cache_dir]
    flags += ["--device", "cpu", "--no-progress"]
    assert run_cli(capsys, "run", path, *flags)[0] == 0
    status, out, _ = run_cli(capsys, "run", "--study", NAME, "--trials", "2", *flags)
    assert status == 0 and " 2/2 " in out
    assert run_cli(capsys, "run", "--study", NAME, "--epochs", "2", *flags)[0] == 2


def test_a_study_file_whose_trials_were_raised_says_the_stored_budget_holds(
    tmp_path, image_folder, cache_dir, capsys, caplog
):
    """The budget lives in the study: a file edited from trials = 1 to 3 ran nothing more, and its
    'nothing left to run' did not say why."""
    path = write_study(tmp_path, image_folder, trials=1, epochs=1)
    flags = ["--storage", f"sqlite:///{tmp_path / 's.db'}", "--cache-dir", cache_dir]
    flags += ["--device", "cpu", "--no-progress", "--create-only"]
    assert run_cli(capsys, "run", path, *flags)[0] == 0
    assert "trial budget" not in caplog.text
    path.write_text(path.read_text().replace("\ntrials = 1\n", "\ntrials = 3\n"))
    assert run_cli(capsys, "run", path, *flags)[0] == 0
    # A warning line (under pytest, its log capture takes hpsearch's warnings from stderr)
    assert (
        f"study {NAME!r} keeps its trial budget of 1, not the study file's trials = 3: "
        "give --trials 3 (to hpsearch run, slurm or kubernetes) to set it" in caplog.text
    )
    caplog.clear()
    assert run_cli(capsys, "run", path, *flags, "--trials", "3")[0] == 0
    assert "trial budget" not in caplog.text


def _stopped_trial_with_a_queued_retry(config, url, cache_dir):
    """Trial 0 stopped by a signal and queued to resume, as a worker leaves it."""
    data = load_study_data(config, cache_dir, progress=False)
    study = open_study(config, open_storage(url), fingerprint(config, data))
    trial = study.ask()
    suggest(trial, config)
    frozen = study.tell(trial, state=TrialState.FAIL)
    assert queue_retry(study, frozen, 2, "its worker was stopped")
    return study, data


def test_a_retry_queued_as_the_budget_is_met_still_runs(
    tmp_path, image_folder, cache_dir, one_torch_thread
):
    config = load_study_config(write_study(tmp_path, image_folder, trials=1, epochs=1))
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    _stopped_trial_with_a_queued_retry(config, url, cache_dir)
    [row] = study_status(open_storage(url), NAME)
    assert (row["budget_spent"], row["budget"], row["waiting"], row["retries"]) == (1, 1, 1, 1)

    summary = run_worker(config, options(url, cache_dir))
    states = [trial.state for trial in load(url).trials]
    assert states[0] == TrialState.FAIL and states[1] in (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(states) == 2 and summary.finished == 1


def test_a_checkpoint_of_another_trial_is_refused_at_resume(
    tmp_path, image_folder, cache_dir, one_torch_thread
):
    config = load_study_config(write_study(tmp_path, image_folder, trials=1, epochs=2))
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study, data = _stopped_trial_with_a_queued_retry(config, url, cache_dir)
    folder = trial_files.trial_folder(
        trial_files.study_folder(tmp_path / "user-checkpoints", study), 0
    )
    planted = {**trial_files.owner(study, study.trials[0]), "trial": 7}
    train(
        config.train_config(study.trials[0].params),
        data,
        checkpoints=CheckpointPolicy(folder, every_epochs=1, owner=planted),
        device="cpu",
    )

    run_worker(config, options(url, cache_dir))
    retry = load(url).trials[1]
    assert retry.state == TrialState.FAIL
    assert "cannot resume from" in retry.user_attrs["fail_reason"]
    assert "'trial': 7" in retry.user_attrs["fail_reason"]
    assert "resumed_from_epoch" not in retry.user_attrs


def _truncated(kept: Path) -> None:
    kept.write_bytes(kept.read_bytes()[: kept.stat().st_size // 2])  # a crash mid copy


def _owned_by_trial_5(kept: Path) -> None:
    payload = torch.load(kept, weights_only=True)
    torch.save({**payload, "owner": {**payload["owner"], "trial": 5}}, kept)


@pytest.mark.parametrize(
    "spoil, why",
    [
        (_owned_by_trial_5, "records trial 5 of study 'test-study' ("),
        (_truncated, "is not a weights file: it looks cut short or damaged"),
        # copied byte for byte: torch reads such a file without a word
        (damage_a_tensor_in_place, "is not a weights file: it looks cut short or damaged"),
    ],
)
def test_export_leaves_unusable_weights_behind_not_the_settings(
    tmp_path, image_folder, cache_dir, capsys, one_torch_thread, spoil, why
):
    """Weights another trial wrote, or that a crash cut short, are never exported as the best
    trial's; its settings, which `train --config` retrains, still are."""
    config = load_study_config(write_study(tmp_path, image_folder, trials=1, epochs=1))
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    launch(config, options(url, cache_dir))
    [kept] = (tmp_path / "user-checkpoints").rglob(WEIGHTS_NAME)
    spoil(kept)

    output = tmp_path / "best.toml"
    status, _, err = run_cli(capsys, "export", "--storage", url, "--study", NAME, "-o", output)
    assert status == 0, err
    assert why in err and "; exporting its settings only" in err, err
    settings, provenance = read_settings(output)
    assert settings["optimizer"] == load(url).trials[0].user_attrs["config"]["optimizer"]
    assert "weights" not in provenance and not output.with_name("best.weights.pt").exists()


def _hand_made_trial(value: float, weights_path: Path) -> optuna.trial.FrozenTrial:
    return create_trial(
        params={"optimizer": "adam", "lr": 0.01},
        distributions={
            "optimizer": CategoricalDistribution(["sgd", "adam"]),
            "lr": FloatDistribution(1e-3, 0.1, log=True),
        },
        value=value,
        user_attrs={
            "weights_path": str(weights_path),
            "config": {"optimizer": "adam", "lr": 0.01, "epochs": 1, "image_size": 32},
        },
    )


def test_a_weights_path_attribute_outside_the_study_deletes_and_copies_nothing(
    tmp_path, image_folder, cache_dir, capsys, one_torch_thread
):
    victims = tmp_path / "elsewhere"
    victims.mkdir()
    (victims / "studies.db").write_bytes(b"the user's own database")
    (victims / WEIGHTS_NAME).write_bytes(b"somebody's weights")
    config = load_study_config(write_study(tmp_path, image_folder, trials=2, epochs=1))
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    data = load_study_data(config, cache_dir, progress=False)
    study = open_study(config, open_storage(url), fingerprint(config, data))
    # A worse trial whose attribute names the folder: the new best trial's clean-up must spare it
    study.add_trial(_hand_made_trial(0.0, victims / WEIGHTS_NAME))
    launch(config, options(url, cache_dir))
    assert sorted(path.name for path in victims.iterdir()) == ["studies.db", WEIGHTS_NAME]

    # A best trial whose attribute names a file elsewhere: export copies nothing
    study.add_trial(_hand_made_trial(1.0, victims / WEIGHTS_NAME))
    output = tmp_path / "best.toml"
    status, _, err = run_cli(capsys, "export", "--storage", url, "--study", NAME, "-o", output)
    assert status == 0 and "exporting its settings only" in err
    assert output.exists() and not output.with_name("best.weights.pt").exists()


def test_running_a_study_again_tries_new_parameters_and_a_fresh_one_reproduces(
    tmp_path, image_folder, cache_dir, one_torch_thread
):
    config = load_study_config(write_study(tmp_path, image_folder, trials=2, epochs=1))
    first, second = (f"sqlite:///{tmp_path / f'{side}.db'}" for side in ("first", "second"))
    launch(config, options(first, cache_dir))
    launch(config, options(second, cache_dir))
    assert [t.params for t in load(first).trials] == [t.params for t in load(second).trials]

    launch(config, options(first, cache_dir), trials=4)
    params = [trial.params for trial in load(first).trials]
    assert len(params) == 4 and params[2] not in params[:2] and params[3] not in params[:2]


def test_train_without_a_checkpoint_folder_keeps_weights_that_evaluate_reads(
    tmp_path, image_folder, cache_dir, capsys, monkeypatch, one_torch_thread
):
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli(
        capsys, "train", "--data", image_folder, "--cache-dir", cache_dir, "--image-size", "32",
        "--epochs", "1", "--batch-size", "16", "--device", "cpu",
    )  # fmt: skip
    assert status == 0, err
    [weights] = Path("runs").glob(f"train-*/{WEIGHTS_NAME}")
    assert f"weights: {weights}" in out
    status, out, err = run_cli(
        capsys, "evaluate", weights, "--data", image_folder, "--cache-dir", cache_dir,
        "--device", "cpu",
    )  # fmt: skip
    assert status == 0 and "top-1" in out, err
