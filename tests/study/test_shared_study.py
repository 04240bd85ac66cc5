"""Workers sharing one study on the real PostgreSQL: budgets, kills, signals and restarts.

Each test gets its own database (dropped after); the restart test gets a private cluster.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from search.attrs import RETRY_OF
from search.cli import main
from search.launch.local import launch
from search.run.study_data import fingerprint, load_study_data
from search.run.worker import WorkerOptions, run_worker
from search.study.opening import open_study
from search.study.storage import open_storage
from search.studyfile import load_study_config
from tests.helpers.studies import trials_of, write_study

FAST_HEARTBEAT = "\n[heartbeat]\ninterval_seconds = 1\ngrace_seconds = 4\n"


def study_file(tmp_path, image_folder, **kwargs):
    """A shared study at 16 px: these tests are of workers and the database, not of scores."""
    kwargs.setdefault("image_size", 16)
    kwargs.setdefault("extra", "")
    kwargs["extra"] += "\n[checkpoint]\nevery_epochs = 1\n"
    text = write_study(tmp_path, image_folder, **kwargs).read_text()
    path = tmp_path / "shared.toml"
    path.write_text(
        text.replace("[heartbeat]\ninterval_seconds = 2\ngrace_seconds = 8\n", FAST_HEARTBEAT)
    )
    return path


def outage_study(tmp_path, image_folder, *, trials: int, epochs: int) -> Path:
    """A study whose workers outlive a database outage of seconds: no pruning, a 20 s grace."""
    path = study_file(tmp_path, image_folder, trials=trials, epochs=epochs, pruner='kind = "none"')
    path.write_text(
        path.read_text().replace(
            FAST_HEARTBEAT, "\n[heartbeat]\ninterval_seconds = 1\ngrace_seconds = 20\n"
        )
    )
    return path


def hpsearch(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "search", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = condition()
        except KeyError:  # the study is not created yet
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_four_workers_finish_the_budget_and_leave_nothing_running(
    tmp_path, image_folder, cache_dir, pg_url
):
    path = study_file(tmp_path, image_folder, trials=8, epochs=1)
    launch(
        load_study_config(path),
        WorkerOptions(pg_url, "cpu", cache_dir, progress=False, checkpoint_dir=tmp_path / "ckpt"),
        workers=4,
    )
    trials = trials_of(pg_url)
    states = [trial.state for trial in trials]
    assert (
        len(trials) == 8  # exactly: the budget's lock (search/study/budget_lock.py)
        and TrialState.RUNNING not in states
        and TrialState.WAITING not in states
    )
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == len(trials)


def test_a_grid_of_points_never_runs_a_point_twice(tmp_path, image_folder, cache_dir, pg_url):
    points = "".join(
        f'\n[[points]]\noptimizer = "sgd"\nlr = {lr}\nmomentum = {momentum}\n'
        for lr in (0.01, 0.03, 0.1)
        for momentum in (0.0, 0.9)
    )
    text = study_file(tmp_path, image_folder, epochs=1, extra=points).read_text()
    text = text.replace("trials = 4\n", "")
    text = text[: text.index("[space]")] + text[text.index("[sampler]") :]
    path = tmp_path / "grid.toml"
    path.write_text(
        text.replace('kind = "median"\nwarmup_epochs = 0\nstartup_trials = 1', 'kind = "none"')
    )
    launch(
        load_study_config(path),
        WorkerOptions(pg_url, "cpu", cache_dir, progress=False, checkpoint_dir=tmp_path / "ckpt"),
        workers=3,
    )
    trials = trials_of(pg_url)
    ran = [
        (trial.user_attrs["config"]["lr"], trial.user_attrs["config"]["momentum"])
        for trial in trials
    ]
    assert sorted(ran) == sorted({*ran}) and len(ran) == 6
    assert all(trial.state == TrialState.COMPLETE for trial in trials)


def test_two_runs_of_one_new_study_at_once_never_suggest_alike(
    tmp_path, image_folder, cache_dir, pg_url
):
    # `hpsearch run --workers 2`, twice at once: each run numbers its workers 0 and 1, and seeds
    # made from those numbers made the two runs' samplers alike, trial for trial.
    path = study_file(tmp_path, image_folder, trials=8, epochs=1, pruner='kind = "none"')
    config = load_study_config(path)
    options = WorkerOptions(pg_url, "cpu", cache_dir, progress=False, checkpoint_dir=tmp_path / "c")
    with ThreadPoolExecutor(2) as runs:
        started = [runs.submit(launch, config, options, workers=2) for _ in range(2)]
        for run in started:
            run.result()
    trials = trials_of(pg_url)
    params = [tuple(sorted(trial.params.items())) for trial in trials]
    assert len(trials) == 8 and all(trial.state == TrialState.COMPLETE for trial in trials)
    assert len(set(params)) == len(params), [trial.params for trial in trials]


def test_a_killed_run_resumes_its_trial_at_once_when_run_again(
    tmp_path, image_folder, cache_dir, pg_url, capsys
):
    # The study file's heartbeat defaults (a 120 s grace): only knowing that the killed process
    # is gone lets the second run resume the trial at once.
    path = write_study(
        tmp_path, image_folder, trials=1, epochs=3, pruner='kind = "none"', image_size=16,
        extra="\n[checkpoint]\nevery_epochs = 1\n",
    )  # fmt: skip
    path.write_text(path.read_text().replace("interval_seconds = 2\ngrace_seconds = 8\n", ""))
    flags = ["--storage", pg_url, "--cache-dir", cache_dir, "--device", "cpu"]
    flags += ["--checkpoint-dir", tmp_path / "ckpt", "--no-progress"]
    first = hpsearch("run", path, *flags)
    checkpoint = wait_for(
        lambda: next((tmp_path / "ckpt").glob("*/trial-0/last.pt"), None), 120, "a checkpoint"
    )
    first.send_signal(signal.SIGKILL)
    killed_at = time.time()
    first.wait(10)
    epochs_before_kill = len(trials_of(pg_url)[0].intermediate_values)

    assert main([str(arg) for arg in ("run", path, *flags)]) == 0, capsys.readouterr().err
    trials = trials_of(pg_url)
    assert trials[0].state == TrialState.FAIL and "is gone" in trials[0].user_attrs["fail_reason"]
    retry = next(trial for trial in trials if trial.user_attrs.get(RETRY_OF) == 0)
    assert retry.state == TrialState.COMPLETE and retry.params == trials[0].params
    resumed = retry.user_attrs["resumed_from_epoch"]
    assert resumed >= 1 and sorted(retry.intermediate_values) == [1, 2, 3]
    assert len(trials) == 2
    assert not checkpoint.exists()  # a finished trial gives its checkpoint back
    print(
        f"\nkill test: retry started {retry.datetime_start.timestamp() - killed_at:.1f} s after "
        f"the kill; {resumed} of {epochs_before_kill} epoch(s) run before the kill were not "
        "retrained"
    )


def test_sigterm_stops_the_worker_cleanly_and_the_trial_retrains_one_epoch_at_most(
    tmp_path, image_folder, cache_dir, pg_url
):
    # No checkpoint falls due by epochs or seconds: the one the retry resumes from is the stop's
    # Two epochs to spare after the second, in which the signal is sent
    path = study_file(tmp_path, image_folder, trials=1, epochs=4, pruner='kind = "none"')
    path.write_text(path.read_text().replace("every_epochs = 1", "every_seconds = 3600"))
    checkpoints = tmp_path / "ckpt"
    worker = hpsearch(
        "run",
        path,
        "--storage",
        pg_url,
        "--cache-dir",
        cache_dir,
        "--device",
        "cpu",
        "--checkpoint-dir",
        checkpoints,
        "--no-progress",
    )
    wait_for(
        lambda: any(len(trial.intermediate_values) >= 2 for trial in trials_of(pg_url)),
        120,
        "two epochs",
    )
    signalled = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert time.monotonic() - signalled < 30 and "SIGTERM" in err
    first = trials_of(pg_url)[0]
    assert first.state == TrialState.FAIL
    assert next(checkpoints.glob("*/trial-0/last.pt"), None) is not None  # written at the stop

    run_worker(
        load_study_config(path),
        WorkerOptions(pg_url, "cpu", cache_dir, progress=False, checkpoint_dir=checkpoints),
    )
    retry = trials_of(pg_url)[-1]
    assert retry.user_attrs[RETRY_OF] == 0 and retry.state == TrialState.COMPLETE
    # Every epoch the stopped attempt finished is resumed, none trained twice
    assert retry.user_attrs["resumed_from_epoch"] == len(first.intermediate_values)
    assert len(retry.intermediate_values) == 4


@pytest.fixture
def private_cluster(private_postgres):
    """A PostgreSQL of our own (tests/conftest.py) that the test may stop and start."""
    return private_postgres.url, private_postgres.stop, private_postgres.start


def test_workers_survive_a_database_restart(tmp_path, image_folder, cache_dir, private_cluster):
    url, stop_server, start_server = private_cluster
    # A trial each, the server stopped in their second epoch
    path = outage_study(tmp_path, image_folder, trials=2, epochs=2)
    workers = hpsearch(
        "run",
        path,
        "--storage",
        url,
        "--workers",
        "2",
        "--cache-dir",
        cache_dir,
        "--device",
        "cpu",
        "--checkpoint-dir",
        tmp_path / "ckpt",
        "--no-progress",
    )
    wait_for(
        lambda: any(len(trial.intermediate_values) >= 1 for trial in trials_of(url)),
        180,
        "a trial with a reported epoch",
    )
    stop_server()
    time.sleep(3)  # workers keep training; their reports and heartbeats wait for the server
    start_server()
    _, err = workers.communicate(timeout=300)
    assert workers.returncode == 0, err
    assert "storage unreachable" in err
    trials = trials_of(url)
    assert [trial.state for trial in trials].count(TrialState.COMPLETE) >= 2
    assert all(trial.state == TrialState.COMPLETE for trial in trials), (
        "a trial failed or was trained twice"
    )
    assert not [trial for trial in trials if RETRY_OF in trial.user_attrs]


def test_optunas_own_storage_paths_wait_out_an_outage(private_cluster):
    # study.ask, suggest and best_trial go through Optuna's cache to private RDBStorage methods
    url, stop_server, start_server = private_cluster
    study = optuna.create_study(study_name="s", storage=open_storage(url), direction="maximize")
    study.tell(study.ask({"x": FloatDistribution(0, 1)}), 0.5)
    stop_server()
    restart = threading.Timer(3, start_server)
    restart.start()
    trial = study.ask()
    study.tell(trial, trial.suggest_float("x", 0, 1))
    assert study.best_trial.value >= 0.5 and len(study.get_trials()) == 2
    restart.join()


def test_a_worker_started_while_the_database_is_down_waits_for_it(
    tmp_path, image_folder, cache_dir, private_cluster, capsys
):
    url, stop_server, start_server = private_cluster
    config = load_study_config(study_file(tmp_path, image_folder, trials=1, epochs=1))
    data = load_study_data(config, cache_dir, progress=False)
    open_study(config, open_storage(url), fingerprint(config, data))
    stop_server()
    restart = threading.Timer(3, start_server)
    restart.start()
    flags = ["--storage", url, "--data", image_folder, "--cache-dir", cache_dir, "--device", "cpu"]
    status = main(["worker", "--study", "test-study", *map(str, flags), "--no-progress"])
    restart.join()
    assert status == 0, capsys.readouterr().err
    assert [trial.state for trial in trials_of(url)] == [TrialState.COMPLETE]


def test_two_workers_survive_outages_at_trial_boundaries(
    tmp_path, image_folder, cache_dir, private_cluster
):
    url, stop_server, start_server = private_cluster
    path = outage_study(tmp_path, image_folder, trials=6, epochs=1)
    flags = ["--storage", url, "--workers", "2", "--cache-dir", cache_dir, "--device", "cpu"]
    workers = hpsearch("run", path, *flags, "--checkpoint-dir", tmp_path / "ckpt", "--no-progress")
    for outage in range(1, 4):  # each time another trial has just been told, take the server away
        wait_for(
            lambda told=outage: sum(t.state.is_finished() for t in trials_of(url)) >= told,
            180,
            "a trial",
        )
        stop_server()
        time.sleep(1)  # met: a worker asks, reports or beats its heart at least once a second
        start_server()
    _, err = workers.communicate(timeout=300)
    assert workers.returncode == 0, err
    assert "storage unreachable" in err, "no worker met an outage"  # each a line, then waited
    trials = trials_of(url)
    assert all(trial.state == TrialState.COMPLETE for trial in trials), "a trial failed"
    assert len(trials) >= 6 and not [t for t in trials if RETRY_OF in t.user_attrs]
