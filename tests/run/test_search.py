"""Searches on small images: suggest, the objective, budgets, failures, workers and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import attrs
from search.cli import main
from search.cli.searching.workers import _exit_status
from search.launch.local import launch
from search.run.worker import WorkerOptions
from search.study.optuna_compat import claim
from search.study.retries import queue_retry
from search.study.space import suggest
from search.study.work_left import nothing_left
from search.studyfile import load_study_config
from tests.helpers.studies import trials_of, write_study


@pytest.fixture
def storage_url(tmp_path):
    return f"sqlite:///{tmp_path / 'studies.db'}"


def on_cpu(command: str, path, storage_url: str, cache_dir, *flags: str) -> int:
    """`hpsearch <command>` of the study file at `path`, on the CPU, without bars: its status."""
    return main(
        [command, str(path), "--storage", storage_url, "--cache-dir", str(cache_dir)]
        + ["--device", "cpu", "--no-progress", *flags]
    )


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"optimizer": "sgd", "lr": 0.01, "momentum": 0.5}, {"optimizer", "lr", "momentum"}),
        ({"optimizer": "adam", "lr": 0.01, "eps": 1e-7}, {"optimizer", "lr", "eps"}),
    ],
)
def test_suggest_gives_only_the_parameters_that_apply(tmp_path, image_folder, params, expected):
    config = load_study_config(write_study(tmp_path, image_folder))
    trial = optuna.trial.FixedTrial(params, number=3)
    train_config = suggest(trial, config)
    assert set(trial.params) == expected
    assert train_config.optimizer == params["optimizer"] and train_config.lr == 0.01
    assert train_config.eps == params.get("eps") and train_config.momentum == params.get("momentum")
    assert train_config.image_size == 32 and train_config.epochs == 2 and train_config.seed == 7


def test_a_search_stores_every_trial_with_its_epochs(
    tmp_path, image_folder, cache_dir, storage_url
):
    config = load_study_config(write_study(tmp_path, image_folder, trials=4))
    launch(config, WorkerOptions(storage_url, "cpu", cache_dir, progress=False))
    trials = trials_of(storage_url)
    assert len(trials) == 4
    for trial in trials:
        assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED), trial
        assert trial.user_attrs["epochs_run"] == len(trial.intermediate_values) >= 1
        assert set(trial.intermediate_values) <= {1, 2}
        assert trial.user_attrs["device"] == "cpu" and trial.user_attrs["code_version"]
        assert {"best_epoch", "seconds", "images_per_second", "config"} <= set(trial.user_attrs)
        assert trial.user_attrs["compiled"] is False
        # Only a complete trial writes something (its weights): no checkpoint falls due in 2 epochs.
        wrote = trial.user_attrs["checkpoint_seconds"] > 0
        assert wrote == (trial.state == TrialState.COMPLETE), trial.user_attrs["checkpoint_seconds"]
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    assert complete and all(
        trial.value == max(trial.intermediate_values.values()) for trial in complete
    )
    kept = sorted((tmp_path / "user-checkpoints").rglob("*.pt"))
    best = optuna.load_study(study_name="test-study", storage=storage_url).best_trial
    assert kept == [Path(best.user_attrs["weights_path"])], (
        "only the best trial's final weights stay"
    )


def test_a_diverging_trial_fails_with_its_reason_and_the_worker_goes_on(
    tmp_path, image_folder, cache_dir, storage_url
):
    bad_first = '\n[[warm_start]]\noptimizer = "sgd"\nlr = 1e12\nmomentum = 0.9\n'
    config = load_study_config(
        write_study(
            tmp_path,
            image_folder,
            trials=3,
            epochs=1,
            extra=bad_first,
            space='optimizer = ["sgd", "adam"]\nlr = { low = 1e-3, high = 1e12 }\nmomentum = 0.9',
        )
    )
    launch(config, WorkerOptions(storage_url, "cpu", cache_dir, progress=False))
    trials = trials_of(storage_url)
    assert [trial.state for trial in trials][0] == TrialState.FAIL
    assert "non-finite" in trials[0].user_attrs["fail_reason"]
    assert trials[0].params["lr"] == 1e12
    assert len(trials) == 3 and all(trial.state != TrialState.RUNNING for trial in trials)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_run_whose_every_trial_failed_exits_1_saying_so(
    tmp_path, image_folder, cache_dir, storage_url, capsys, log_format
):
    """It exited 0, and a script or CI took a search of nothing but diverged trials for done."""
    space = 'optimizer = ["sgd"]\nlr = { low = 1e11, high = 1e12 }\nmomentum = 0.9'
    path = write_study(tmp_path, image_folder, trials=2, epochs=1, space=space)
    assert on_cpu("run", path, storage_url, cache_dir, "--log-format", log_format) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    if log_format == "json":  # a log collector's line, as every other of the log
        event = json.loads(last)
        last = f"hpsearch: {event['event']}: {event['message']}"
    assert last.startswith("hpsearch: error: no trial of study 'test-study' succeeded: all 2 ")
    assert "failed (trial 0: " in last
    assert f"`hpsearch trials --study test-study --storage {storage_url}` lists each" in last


def test_a_study_whose_every_lineage_failed_after_its_retries_exits_1(capsys):
    """Each trial's worker died (a retried fault) until its retries were spent: every attempt but
    the last counts as stopped, and `run` exited 0."""
    study = optuna.create_study(study_name="s", direction="maximize")
    dead = study.ask()
    dead.set_user_attr(attrs.FAIL_REASON, "its worker (pid 7 on vm) is gone")
    frozen = study.tell(dead, state=TrialState.FAIL)
    queued = queue_retry(study, frozen, 2, "its worker is gone")
    retry = claim(study, study.trials[queued])
    retry.set_user_attr(attrs.FAIL_REASON, "its worker (pid 8 on vm) is gone")
    study.tell(retry, state=TrialState.FAIL)
    assert _exit_status(study, "text") == 1
    assert "all 1 failed (trial 1: its worker (pid 8 on vm) is gone)" in capsys.readouterr().err


def test_running_again_resumes_up_to_the_budget(tmp_path, image_folder, cache_dir, storage_url):
    config = load_study_config(write_study(tmp_path, image_folder, trials=2, epochs=1))
    options = WorkerOptions(storage_url, "cpu", cache_dir, progress=False)
    launch(config, options)
    launch(config, options)
    assert len(trials_of(storage_url)) == 2
    launch(config.with_overrides(trials=3), options)  # a study file's budget is not the study's
    assert len(trials_of(storage_url)) == 2
    launch(config, options, trials=3)  # --trials is
    assert len(trials_of(storage_url)) == 3


@pytest.mark.xdist_group("torch-compile")  # under -n: one worker, one Inductor compile at a time
def test_run_compile_trains_every_trial_through_torch_compile(
    tmp_path, image_folder, cache_dir, storage_url
):
    path = write_study(tmp_path, image_folder, trials=2, epochs=1)
    assert on_cpu("run", path, storage_url, cache_dir, "--compile") == 0
    trials = trials_of(storage_url)
    assert len(trials) == 2 and all(trial.user_attrs["compiled"] is True for trial in trials)
    assert all(trial.state in (TrialState.COMPLETE, TrialState.PRUNED) for trial in trials)


def test_three_local_workers_on_sqlite_meet_the_budget(
    tmp_path, image_folder, cache_dir, storage_url, capfd, caplog
):
    path = write_study(tmp_path, image_folder, trials=5, epochs=1, sampler='kind = "tpe"')
    config = load_study_config(path)
    launch(config, WorkerOptions(storage_url, "cpu", cache_dir, progress=False), workers=3)
    trials = trials_of(storage_url)
    finished = [trial for trial in trials if trial.state.is_finished()]
    assert len(finished) == 5 and len(finished) == len(trials)
    assert not [trial for trial in trials if trial.state == TrialState.FAIL], [
        trial.user_attrs.get("fail_reason") for trial in trials
    ]
    err = capfd.readouterr().err
    assert "database is locked" not in err
    # Trials of one epoch leave the median pruner nothing to stop early, and TPE's 10 startup
    # trials draw all 5 of the budget at random: each said once, by the run
    for idle in ("pruner 'median' will stop no trial early", "sampler 'tpe' will draw every"):
        assert (caplog.text + err).count(idle) == 1, (caplog.text, err)


def test_a_study_run_to_its_end_says_so_once_when_run_again(
    tmp_path, image_folder, cache_dir, storage_url, capfd, caplog
):
    # Each worker started said "finished 0 trial(s) (nothing left to run)", exit 0, no hint
    path = write_study(tmp_path, image_folder, trials=2, epochs=1)
    assert on_cpu("run", path, storage_url, cache_dir) == 0
    capfd.readouterr()
    idle = "pruner 'median' will stop no trial early"  # one epoch: said as the search started
    assert idle in caplog.text
    caplog.clear()

    assert on_cpu("run", path, storage_url, cache_dir, "--workers", "2") == 0
    err = capfd.readouterr().err
    assert idle not in caplog.text + err, "advice on a search that is over"
    assert (
        "study 'test-study' has nothing left to run: 2 of its 2 trials are finished and none is "
        "running or queued; give --trials N (above 2) to raise its budget, or a new [study] name"
    ) in err
    assert "worker started" not in err and len(trials_of(storage_url)) == 2

    # A budget lowered below the trials spent: "above 1" said it, and --trials 2 ran nothing again
    assert on_cpu("run", path, storage_url, cache_dir, "--trials", "1") == 0
    err = capfd.readouterr().err
    assert "2 of its 1 trials are finished" in err and "give --trials N (above 2)" in err


@pytest.mark.parametrize("retries_left", [True, False])
def test_a_trial_owed_its_retry_is_work_left_past_the_budget(tmp_path, image_folder, retries_left):
    """Its worker killed between recording the trial's stop and queuing its retry: a worker would
    queue and run the retry (budget spent or not), so `run` must start one, not say it has
    nothing left; past its retries the lineage has ended."""
    config = load_study_config(write_study(tmp_path, image_folder, trials=1, epochs=1))
    url = f"sqlite:///{tmp_path / 'owed.db'}"
    study = optuna.create_study(study_name="test-study", storage=url, direction="maximize")
    faults = 0 if retries_left else config.heartbeat.max_retries
    due = {"reason": "its worker died", "fault": True, "at": 0.0}
    stopped = {attrs.RETRY_DUE: due, attrs.FAULTS: faults, attrs.FAIL_REASON: "its worker died"}
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=stopped))
    left = nothing_left(study, config)
    assert (left is None) == retries_left, left


def test_an_existing_study_with_another_space_is_refused(
    tmp_path, image_folder, cache_dir, storage_url, capsys
):
    path = write_study(tmp_path, image_folder, trials=1, epochs=1)
    assert on_cpu("run", path, storage_url, cache_dir) == 0
    path.write_text(path.read_text().replace("high = 0.1", "high = 0.5"))
    assert on_cpu("run", path, storage_url, cache_dir) == 2
    err = capsys.readouterr().err
    assert "was created with other settings" in err and "another [study] name" in err
    assert "\n  space.lr: {'low': 0.001, 'high': 0.1, 'log': True} in the study, " in err
    # The storage the study is in (--storage here), where it named the study file's, if any
    assert f"`hpsearch run --study test-study --storage {storage_url}`" in err
    assert len(trials_of(storage_url)) == 1


def test_a_worker_with_other_data_is_refused(
    tmp_path, image_folder, cache_dir, storage_url, capsys
):
    path = write_study(tmp_path, image_folder, trials=1, epochs=1)
    assert on_cpu("run", path, storage_url, cache_dir) == 0
    (image_folder / "train" / "class_1" / "img_0000.JPEG").unlink()
    status = on_cpu("worker", path, storage_url, cache_dir)
    err = capsys.readouterr().err
    assert status == 2 and "data differs" in err and "train_images" in err


@pytest.mark.parametrize(
    "storage, message",
    [
        (
            "postgresql+psycopg://nobody@127.0.0.1:1/nowhere",
            "cannot reach storage postgresql+psycopg://nobody@127.0.0.1:1/nowhere: connection "
            'failed: connection to server at "127.0.0.1", port 1 failed: Connection refused; '
            "check that its server is up and this machine reaches its host and port",
        ),
        ("not a url", "malformed storage URL"),
    ],
    ids=["no server there", "no URL"],
)
def test_bad_storage_is_one_line_and_writes_nothing(
    tmp_path, image_folder, cache_dir, capsys, storage, message
):
    path = write_study(tmp_path, image_folder)
    status = main(
        ["run", str(path), "--storage", storage, "--cache-dir", str(cache_dir), "--no-progress"]
    )
    err = capsys.readouterr().err
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_zero_budget_is_refused_before_anything_is_written(
    tmp_path, image_folder, storage_url, capsys
):
    path = write_study(tmp_path, image_folder)
    assert main(["run", str(path), "--storage", storage_url, "--trials", "0"]) == 2
    assert "trials" in capsys.readouterr().err
    assert not (tmp_path / "studies.db").exists()


def test_the_cli_runs_a_search_and_reports_status_as_a_subprocess(
    tmp_path, image_folder, cache_dir, storage_url
):
    path = write_study(tmp_path, image_folder, trials=2, epochs=1)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "search",
            "run",
            str(path),
            "--storage",
            storage_url,
            "--cache-dir",
            str(cache_dir),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "test-study" in run.stdout
    status = subprocess.run(
        [sys.executable, "-m", "search", "status", "--storage", storage_url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    rows = json.loads(status.stdout)
    assert rows[0]["study"] == "test-study" and rows[0]["trials"] == 2
    assert rows[0]["complete"] + rows[0]["pruned"] == 2


def test_storage_comes_from_the_environment_when_no_flag_is_given(
    tmp_path, image_folder, cache_dir, storage_url, monkeypatch, capsys
):
    monkeypatch.setenv("HPSEARCH_STORAGE", storage_url)
    path = write_study(tmp_path, image_folder, trials=1, epochs=1)
    assert (
        main(["run", str(path), "--cache-dir", str(cache_dir), "--device", "cpu", "--no-progress"])
        == 0
    )
    assert len(trials_of(storage_url)) == 1
    assert main(["status"]) == 0 and "test-study" in capsys.readouterr().out
