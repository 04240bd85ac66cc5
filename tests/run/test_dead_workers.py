"""Dead workers and damaged files: a trial is resumed, or fails once with its reason; never stays
RUNNING, never runs twice."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import psutil
import pytest
from optuna.trial import TrialState

import search.run.objective
from search import attrs, locations
from search.cli import main
from search.results.status import format_status, study_status
from search.run import liveness, trial_files
from search.run.study_data import fingerprint, load_study_data
from search.run.worker import WorkerOptions, run_worker
from search.study.opening import open_study
from search.study.optuna_compat import trial_id_of
from search.study.retries import queue_retry
from search.study.space import suggest
from search.study.storage import open_storage
from search.studyfile import load_study_config
from tests.helpers.damaged_files import damage_a_tensor_in_place
from tests.helpers.studies import trials_of, write_study
from trainer import PauseAfterEpoch
from trainer.checkpoint import CHECKPOINT_NAME, CheckpointPolicy
from trainer.errors import NoSpaceLeft
from trainer.files import WEIGHTS_NAME
from trainer.loop import train

NAME = "test-study"


def a_gone_process() -> dict:
    """The record a worker of this machine left before it was killed."""
    child = subprocess.Popen(["sleep", "30"])
    process = psutil.Process(child.pid)
    record = {**liveness.this_worker(), "pid": child.pid}
    record["started"] = round(process.create_time(), 2)
    record["since_boot"] = round(process.create_time() - psutil.boot_time(), 2)
    child.kill()
    child.wait()
    return record


def test_a_process_is_gone_when_its_pid_is_free_or_taken_by_another_program():
    me = liveness.this_worker()
    assert not liveness.is_gone(me)
    assert liveness.is_gone({**me, "since_boot": me["since_boot"] - 100})  # the pid was reused
    assert liveness.is_gone(a_gone_process())
    assert not liveness.is_gone({**a_gone_process(), "host": "another-machine"})
    # A machine with the same name (a cloned VM), or this one before it rebooted: the heartbeat
    assert not liveness.is_gone({**a_gone_process(), "boot_id": "another-boot"})
    assert not liveness.is_gone(None)  # an older hpsearch: judged by its heartbeat
    # An older hpsearch's record of a worker of this machine: its wall-clock start alone
    older = {key: value for key, value in me.items() if key not in ("since_boot", "boot_id")}
    assert not liveness.is_gone(older)
    assert liveness.is_gone({**older, "started": me["started"] - 100})


def test_a_step_of_the_wall_clock_leaves_a_live_worker_alive(monkeypatch):
    # An NTP step or a VM's migration moves the kernel's boot time as the wall clock sees it,
    # which psutil adds to a process's start: every worker of the machine was "gone" after one,
    # and its siblings failed its trials while it trained them
    me = liveness.this_worker()
    booted = psutil._pslinux.boot_time  # what psutil reads /proc/stat's btime with
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: booted() + 1.0)
    assert round(psutil.Process().create_time(), 2) != me["started"]  # the step, as psutil sees it
    assert not liveness.is_gone(me)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_two_workers_racing_over_one_dead_trial_queue_one_retry(
    tmp_path, image_folder, cache_dir, backend, request
):
    url = (
        f"sqlite:///{tmp_path / 's.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    config = load_study_config(write_study(tmp_path, image_folder, trials=2, epochs=1))
    data = load_study_data(config, cache_dir, progress=False)
    study = open_study(config, open_storage(url), fingerprint(config, data))
    trial = study.ask()
    suggest(trial, config)
    trial.set_user_attr(attrs.WORKER, a_gone_process())

    start = threading.Barrier(2)
    failed: list[list[int]] = []

    def sweep() -> None:
        mine = optuna.load_study(study_name=NAME, storage=open_storage(url))
        start.wait()
        failed.append(liveness.fail_dead_trials(mine, grace_seconds=3600, max_retries=2))

    sweepers = [threading.Thread(target=sweep) for _ in range(2)]
    for sweeper in sweepers:
        sweeper.start()
    for sweeper in sweepers:
        sweeper.join()
    assert sorted(failed) == [[], [0]]
    first, retry = trials_of(url)
    assert first.state == TrialState.FAIL and "is gone" in first.user_attrs["fail_reason"]
    assert retry.state == TrialState.WAITING and retry.user_attrs[attrs.RETRY_OF] == 0


def test_status_shows_who_runs_a_trial_and_when_it_last_beat(tmp_path, image_folder, cache_dir):
    url = f"sqlite:///{tmp_path / 's.db'}"
    config = load_study_config(write_study(tmp_path, image_folder, trials=2, epochs=3))
    data = load_study_data(config, cache_dir, progress=False)
    study = open_study(config, open_storage(url), fingerprint(config, data))
    trial = study.ask()
    trial.set_user_attr(attrs.CONFIG, {"epochs": 3})
    trial.set_user_attr(attrs.WORKER, {**liveness.this_worker(), "slurm_job": "812"})
    trial.report(0.5, 1)
    with liveness.Heartbeat(open_storage(url), trial, 60):
        time.sleep(0.5)
    [row] = study_status(open_storage(url), NAME)
    [running] = row["running_trials"]
    assert running["epochs_done"] == 1 and running["heartbeat_age_seconds"] < 5
    assert f"trial 0, 1/3 epochs done, pid {os.getpid()} on " in format_status([row])
    assert "(slurm_job 812)" in format_status([row])
    assert running["dead"] is None and "resumes it" not in format_status([row])


def test_status_says_when_a_running_trial_s_worker_counts_as_dead(
    tmp_path, image_folder, cache_dir
):
    """Killed: RUNNING, its heartbeat aging, until the next worker looks; status says that worker
    resumes it, by the study's own grace (grace_seconds = 8 in these study files, not 120)."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    config = load_study_config(write_study(tmp_path, image_folder, trials=3, epochs=3))
    data = load_study_data(config, cache_dir, progress=False)
    study = open_study(config, open_storage(url), fingerprint(config, data))
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    gone, silent, beating = study.ask(), study.ask(), study.ask()
    gone.set_user_attr(attrs.WORKER, {**liveness.this_worker(), "pid": killed.pid})
    silent.set_user_attr(attrs.WORKER, {"host": "gpu-3", "pid": 7})
    beating.set_user_attr(attrs.WORKER, {"host": "gpu-4", "pid": 7})
    storage = open_storage(url)
    for trial, age in ((gone, 1), (silent, 9), (beating, 2)):
        storage.set_trial_system_attr(trial_id_of(trial), attrs.HEARTBEAT, time.time() - age)
    [row] = study_status(open_storage(url), NAME)
    gone_line, silent_line, beating_line = format_status([row]).splitlines()[2:5]
    here = socket.gethostname()
    assert gone_line.endswith(
        f"its worker (pid {killed.pid} on {here}) is gone: the next worker resumes it"
    )
    # Seconds as status reads them: 9 or more, on a busy machine
    assert re.search(
        r"its worker sent no heartbeat for \d+ s \(killed, or its machine lost\): the next "
        r"worker resumes it$",
        silent_line,
    )
    assert re.search(r"last heartbeat \d+ s ago$", beating_line), "alive: within its grace"


def test_a_job_array_s_task_is_named_as_squeue_names_it(monkeypatch):
    """`Submitted batch job 1`: its first task is 1_0 in squeue and in its log's name, though
    SLURM gives the task a job id of its own (2)."""
    monkeypatch.setenv("SLURM_JOB_ID", "2")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    monkeypatch.delenv("POD_NAME", raising=False)
    me = liveness.this_worker()
    assert (me["slurm_job"], me["slurm_array_job"], me["slurm_task"]) == ("2", "1", "0")
    assert liveness.describe(me).endswith(" (slurm_job 1_0)")


def test_a_job_outside_an_array_and_a_pod_are_named_by_their_own_ids(monkeypatch):
    for variable in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "812")
    assert liveness.describe(liveness.this_worker()).endswith(" (slurm_job 812)")
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setenv("POD_NAME", "study-worker-3")
    assert liveness.describe(liveness.this_worker()).endswith(" (kubernetes_pod study-worker-3)")


def test_a_missed_heartbeat_names_the_trial_by_its_number(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = open_storage(url)
    optuna.create_study(study_name="another", storage=storage).ask()  # ids count across studies
    trial = optuna.create_study(study_name=NAME, storage=storage).ask()
    assert (trial.number, trial_id_of(trial)) == (0, 2)
    # The worker's database has turned read-only (a disk remounted so): its beats cannot land
    read_only = optuna.storages.RDBStorage(f"sqlite:///file:{tmp_path / 's.db'}?mode=ro&uri=true")
    caplog.set_level(logging.WARNING, logger="hpsearch.worker")
    with liveness.Heartbeat(read_only, trial, 60):
        pass  # the first beat is tried at once, and waited for on leaving
    assert "heartbeat of trial 0 missed: attempt to write a readonly database" in caplog.text
    assert "trial 2" not in caplog.text


def a_spent_study_and_its_running_trial(tmp_path, image_folder, cache_dir, *, done_value=0.5):
    """A study whose budget of 1 is spent by a COMPLETE trial, so a worker has nothing new to
    start, and a trial RUNNING beside it: (config, url, data, study, the running trial)."""
    config = load_study_config(write_study(tmp_path, image_folder, trials=1, epochs=1))
    url = f"sqlite:///{tmp_path / 's.db'}"
    data = load_study_data(config, cache_dir, progress=False)
    study = open_study(config, open_storage(url), fingerprint(config, data))
    done = study.ask()
    suggest(done, config)
    study.tell(done, done_value)
    running = study.ask()
    suggest(running, config)
    return config, url, data, study, running


def test_a_worker_that_finds_a_silent_trial_waits_out_its_grace_and_resumes_it(
    tmp_path, image_folder, cache_dir, capsys, one_torch_thread
):
    # A worker of another machine went silent: only its heartbeat can tell it is dead
    config, url, data, study, trial = a_spent_study_and_its_running_trial(
        tmp_path, image_folder, cache_dir
    )
    trial.set_user_attr(attrs.WORKER, {**liveness.this_worker(), "host": "lost-machine"})
    study._storage.set_trial_system_attr(trial._trial_id, attrs.HEARTBEAT, time.time() - 5)

    options = WorkerOptions(url, "cpu", cache_dir, progress=False)
    summary = run_worker(config, options, data=data)
    err = capsys.readouterr().err
    assert "waiting for trial 1: its worker (pid " in err
    # it left no checkpoint here: said to start over, not to resume from its last checkpoint
    assert "queued to run again from epoch 1 (no checkpoint of it here)" in err
    # `status` counts it as stopped, its lineage going on, where the line had said "failed"
    assert "trial 1 stopped: its worker sent no heartbeat for " in err
    _, silent, retry = trials_of(url)
    assert silent.state == TrialState.FAIL and "no heartbeat" in silent.user_attrs["fail_reason"]
    assert retry.user_attrs[attrs.RETRY_OF] == 1 and summary.finished == 1
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)


def test_a_retry_that_finds_no_checkpoint_of_the_epochs_before_says_it_trains_them_again(
    tmp_path, image_folder, cache_dir, caplog, one_torch_thread
):
    # As a retry queued "to resume from its last checkpoint" that its worker looks for under
    # another --checkpoint-dir (a second submission's, a node's own disk): it trained from epoch 1
    # without a word
    config, url, data, study, trial = a_spent_study_and_its_running_trial(
        tmp_path, image_folder, cache_dir
    )
    trial.report(0.25, 1)
    queue_retry(study, study._storage.get_trial(trial._trial_id), 3, "stopped", fault=False)
    study.tell(trial, state=TrialState.FAIL)

    run_worker(config, WorkerOptions(url, "cpu", cache_dir, progress=False), data=data)
    _, _, retry = trials_of(url)
    assert retry.user_attrs[attrs.RETRY_OF] == 1 and "resumed_from_epoch" not in retry.user_attrs
    assert (
        "trial 2, continuing trial 1 which reached epoch 1, finds no checkpoint in " in caplog.text
    )
    assert "it trains from epoch 1" in caplog.text


def test_a_dead_trial_out_of_retries_leaves_no_checkpoint_behind(
    tmp_path, image_folder, cache_dir, one_torch_thread
):
    """Its lineage will never be resumed: its checkpoint is not kept for the life of the study
    (the chaos run at a473102 found five such ResNet-18 checkpoints, 90-134 MB each, left)."""
    config, url, data, study, last = a_spent_study_and_its_running_trial(
        tmp_path, image_folder, cache_dir
    )
    last.set_user_attr(attrs.WORKER, a_gone_process())
    last.set_user_attr(attrs.ATTEMPT, config.heartbeat.max_retries)  # its last retry
    root = locations.checkpoint_root(None, config.checkpoint.dir)
    folder = trial_files.trial_folder(trial_files.study_folder(root, study), last.number)
    folder.mkdir(parents=True)
    (folder / CHECKPOINT_NAME).write_bytes(b"a checkpoint")

    run_worker(config, WorkerOptions(url, "cpu", cache_dir, progress=False), data=data)
    _, dead = trials_of(url)
    assert dead.state == TrialState.FAIL and "is gone" in dead.user_attrs[attrs.FAIL_REASON]
    assert not folder.exists()


def test_a_retry_that_ends_best_leaves_no_half_write_of_its_killed_attempt_behind(
    tmp_path, image_folder, cache_dir, one_torch_thread
):
    """Its folder stays for its weights: what the attempt killed mid-write left there goes too,
    young as it is (the chaos run found a `.last.pt.*.tmp` kept beside the best weights)."""
    config, url, data, study, killed = a_spent_study_and_its_running_trial(
        tmp_path, image_folder, cache_dir, done_value=0.0
    )
    killed.set_user_attr(attrs.WORKER, a_gone_process())
    root = locations.checkpoint_root(None, config.checkpoint.dir)
    folder = trial_files.trial_folder(trial_files.study_folder(root, study), killed.number)
    folder.mkdir(parents=True)
    (folder / f".{CHECKPOINT_NAME}.0a1b2c3d.tmp").write_bytes(b"half a checkpoint")

    run_worker(config, WorkerOptions(url, "cpu", cache_dir, progress=False), data=data)
    _, _, retry = trials_of(url)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs[attrs.RETRY_OF] == 1
    assert attrs.best_trial(trials_of(url)).number == retry.number
    assert [path.name for path in folder.iterdir()] == [WEIGHTS_NAME]


def _cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "spoil, said",
    [
        (_cut_short, "cannot be read"),
        # torch.load read it without a word: the run trained on the damage and failed as diverged
        (damage_a_tensor_in_place, "fails its checksum: damaged since it was written"),
    ],
)
def test_a_damaged_checkpoint_is_set_aside_and_the_run_starts_over(
    tmp_path, image_folder, cache_dir, caplog, one_torch_thread, spoil, said
):
    config = load_study_config(write_study(tmp_path, image_folder, epochs=2))
    data = load_study_data(config, cache_dir, progress=False)
    train_config = config.train_config({"optimizer": "adam", "lr": 0.01})
    policy = CheckpointPolicy(tmp_path / "run", every_epochs=1)
    train(train_config.replace(epochs=1), data, checkpoints=policy, device="cpu")
    spoil(tmp_path / "run" / CHECKPOINT_NAME)

    result = train(train_config, data, checkpoints=policy, resume=True, device="cpu")
    assert result.resumed_from_epoch is None and len(result.history) == 2
    [aside] = (tmp_path / "run").glob(f"{CHECKPOINT_NAME}.unreadable-*")
    assert "cannot be read" in caplog.text and aside.name in caplog.text and said in caplog.text


@pytest.fixture
def small_tmpfs(tmp_path):
    """A checkpoint folder on a 3 MB disk of its own: a ResNet-18 checkpoint or weights file (tens
    of MB) never fits."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)  # a test may have freed it


def free_space(folder) -> None:
    """Unmount the small disk: the folder is then one on tmp_path's disk, with room to spare."""
    subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.mark.parametrize("trials_per_worker", [1, 2])
def test_a_full_disk_stops_the_worker_with_one_line_and_its_trials_resume_once_freed(
    tmp_path, image_folder, cache_dir, small_tmpfs, one_torch_thread, trials_per_worker
):
    path = write_study(
        tmp_path,
        image_folder,
        trials=3,
        epochs=2,
        pruner='kind = "none"',
        image_size=16,
        extra="\n[checkpoint]\nevery_epochs = 1\n",
    )
    url = f"sqlite:///{tmp_path / 's.db'}"
    options = WorkerOptions(
        url,
        "cpu",
        cache_dir,
        progress=False,
        checkpoint_dir=small_tmpfs,
        trials_per_worker=trials_per_worker,
    )
    with pytest.raises(NoSpaceLeft) as stopped:
        run_worker(load_study_config(path), options, create=True)
    line = str(stopped.value)
    assert line.startswith(f"no space left on {small_tmpfs}/") and "\n" not in line
    assert line.endswith(
        f"Free space in {small_tmpfs}, or make it writable (or move that folder to a larger "
        "disk), and run again"
    )
    assert f"{trials_per_worker} trial(s) it stopped are queued to resume" in line
    # Each trial it started was stopped at its first checkpoint, with the epoch reported and the
    # reason, and queued to resume; no trial was started after
    trials = trials_of(url)
    started, queued = trials[:trials_per_worker], trials[trials_per_worker:]
    assert [trial.state for trial in started] == [TrialState.FAIL] * trials_per_worker
    for trial in started:
        assert trial.user_attrs[attrs.FAIL_REASON].startswith("NoSpaceLeft: no space left on")
        assert list(trial.intermediate_values) == [1]
    assert [trial.state for trial in queued] == [TrialState.WAITING] * trials_per_worker
    assert all(attrs.is_retry(trial) for trial in queued)

    free_space(small_tmpfs)
    run_worker(load_study_config(path), options)
    trials = trials_of(url)
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    assert len(complete) == 3 == attrs.budget_spent(trials), "no trial was lost"
    assert [trial.state for trial in trials[:trials_per_worker]] == [
        TrialState.FAIL
    ] * trials_per_worker


def test_a_trial_whose_weights_cannot_be_written_completes_and_export_says_they_are_missing(
    tmp_path, image_folder, cache_dir, small_tmpfs, capsys, one_torch_thread
):
    # Checkpoints every 120 s (the default): the weights file is the one file a trial writes
    path = write_study(
        tmp_path, image_folder, trials=2, epochs=2, pruner='kind = "none"', image_size=16
    )
    url = f"sqlite:///{tmp_path / 's.db'}"
    flags = ["--storage", url, "--cache-dir", str(cache_dir), "--checkpoint-dir", str(small_tmpfs)]
    status = main(["run", str(path), *flags, "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    [trial] = trials_of(url)  # no second trial started
    assert trial.state == TrialState.COMPLETE and trial.value == max(
        trial.intermediate_values.values()
    )
    assert list(trial.intermediate_values) == [1, 2]
    not_saved = trial.user_attrs[attrs.WEIGHTS_NOT_SAVED]
    assert not_saved.startswith(f"no space left on {small_tmpfs}/") and "weights.pt" in not_saved
    assert attrs.WEIGHTS not in trial.user_attrs
    assert f"trial 0 is COMPLETE without its weights ({not_saved})" in err
    assert status == 2
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            f"hpsearch: error: {not_saved}: this worker started no more trials. Free space in"
        )
    )

    status = main(
        ["export", "--study", NAME, "--storage", url, "--checkpoint-dir", str(small_tmpfs)]
    )
    out, err = capsys.readouterr()
    assert status == 0 and '"optimizer"' in out
    assert f"trial 0's weights are missing: they were never written ({not_saved})" in err


def test_worker_processes_on_a_full_disk_keep_their_values_and_run_exits_with_their_lines(
    tmp_path, image_folder, cache_dir, small_tmpfs, capfd
):
    path = write_study(
        tmp_path, image_folder, trials=2, epochs=1, pruner='kind = "none"', image_size=16
    )
    url = f"sqlite:///{tmp_path / 's.db'}"
    flags = ["--storage", url, "--cache-dir", str(cache_dir), "--checkpoint-dir", str(small_tmpfs)]
    flags += ["--device", "cpu", "--no-progress", "--workers", "2", "--log-format", "json"]
    status = main(["run", str(path), *flags])
    err = capfd.readouterr().err
    trials = trials_of(url)
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 2, "values kept"
    assert all(attrs.WEIGHTS_NOT_SAVED in trial.user_attrs for trial in trials)
    # A JSON log to its end: the workers' errors and the run's are objects as its other lines are
    records = [json.loads(line) for line in err.splitlines()]
    errors = [record["message"] for record in records if record["event"] == "error"]
    assert status == 2 and len(errors) == 3, err
    assert all(message.startswith("no space left on") for message in errors[:2]), err
    assert records[-1]["message"] == (
        "worker process(es) hpsearch-worker-0, hpsearch-worker-1 exited with an error; see the "
        "messages above"
    )


def test_a_killed_worker_behind_the_grpc_proxy_is_resumed(
    tmp_path, image_folder, cache_dir, capsys, one_torch_thread
):
    pytest.importorskip("grpc")
    url = f"sqlite:///{tmp_path / 'behind-proxy.db'}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proxy = subprocess.Popen(
        [sys.executable, "-m", "search", "grpc-proxy", "--storage", url, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    path = write_study(
        tmp_path, image_folder, trials=1, epochs=5, pruner='kind = "none"', image_size=16,
        extra="\n[checkpoint]\nevery_epochs = 1\n",
    )  # fmt: skip
    flags = ["--storage", f"grpc://127.0.0.1:{port}", "--cache-dir", str(cache_dir)]
    flags += ["--device", "cpu", "--no-progress"]
    try:
        optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port).wait_server_ready(60)
        first = subprocess.Popen([sys.executable, "-m", "search", "run", str(path), *flags])
        deadline = time.monotonic() + 120
        while not list((tmp_path / "user-checkpoints").glob("*/trial-0/last.pt")):
            assert time.monotonic() < deadline and first.poll() is None, "no checkpoint"
            time.sleep(0.1)
        first.kill()
        first.wait(10)
        [killed] = trials_of(url)
        assert killed.system_attrs[attrs.HEARTBEAT] > time.time() - 10  # beats went through
        assert main(["run", str(path), *flags]) == 0, capsys.readouterr().err
    finally:
        proxy.terminate()
        proxy.wait(30)
    first_attempt, retry = trials_of(url)
    assert first_attempt.state == TrialState.FAIL and retry.user_attrs[attrs.RETRY_OF] == 0
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["resumed_from_epoch"] >= 1


def test_a_worker_whose_trial_another_failed_drops_it_and_goes_on(
    tmp_path, image_folder, cache_dir, capsys, one_torch_thread
):
    # Another worker took this one for dead (a clock far off): the trial is FAIL and requeued
    # after its first epoch, which the worker finds as it reports its second
    path = write_study(
        tmp_path, image_folder, trials=1, epochs=3, pruner='kind = "none"', image_size=16
    )
    url = f"sqlite:///{tmp_path / 's.db'}"
    config = load_study_config(path)
    data = load_study_data(config, cache_dir, progress=False)
    study = open_study(config, open_storage(url), fingerprint(config, data))

    def fail_it_after_the_first_epoch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.05)
            running = study.get_trials(states=(TrialState.RUNNING,))
            if running and running[0].intermediate_values:
                liveness._fail(study, running[0], "taken for dead", 2)
                queue_retry(study, running[0], 2, "taken for dead")
                return

    other = threading.Thread(target=fail_it_after_the_first_epoch)
    other.start()
    summary = run_worker(config, WorkerOptions(url, "cpu", cache_dir, progress=False), data=data)
    other.join()
    assert "was failed meanwhile by another worker (taken for dead)" in capsys.readouterr().err
    first, retry = trials_of(url)
    assert first.state == TrialState.FAIL and first.user_attrs["fail_reason"] == "taken for dead"
    assert retry.state == TrialState.COMPLETE and summary.finished == 1


def test_a_trial_another_worker_failed_as_it_paused_is_dropped_not_a_crash(
    tmp_path, image_folder, cache_dir, capsys, monkeypatch, one_torch_thread
):
    """The chaos run's SIGSTOPped worker: continued past the grace, its trial already failed and
    requeued by another worker, it reached a rung (its reads a little behind) and paused it. The
    pause's writes meet a finished trial: the worker drops the trial and goes on to its retry."""
    path = write_study(
        tmp_path, image_folder, trials=1, epochs=2,
        pruner='kind = "asha"\nmin_epochs = 1\nreduction_factor = 2',
    )  # fmt: skip
    url = f"sqlite:///{tmp_path / 's.db'}"
    config = load_study_config(path)
    report = search.run.objective.report_epoch
    taken = []

    def failed_by_another_as_it_pauses(trial, epoch, val_top1, **last):
        report(trial, epoch, val_top1, **last)
        if not taken:
            taken.append(trial.number)
            frozen = trial.study._storage.get_trial(trial._trial_id)
            liveness._fail(trial.study, frozen, "taken for dead", 2)
            queue_retry(trial.study, frozen, 2, "taken for dead")
            raise PauseAfterEpoch(epoch, "paused at the rung")

    monkeypatch.setattr(search.run.objective, "report_epoch", failed_by_another_as_it_pauses)
    run_worker(config, WorkerOptions(url, "cpu", cache_dir, progress=False), create=True)
    assert "was failed meanwhile by another worker (taken for dead)" in capsys.readouterr().err
    first, retry = trials_of(url)
    assert first.state == TrialState.FAIL and first.user_attrs["fail_reason"] == "taken for dead"
    assert attrs.PAUSED_AT not in first.user_attrs
    assert retry.state == TrialState.COMPLETE


def test_a_retry_still_queued_when_the_epoch_budget_is_met_is_closed_not_left_waiting(
    tmp_path, image_folder, cache_dir, capsys, one_torch_thread
):
    """The chaos run's study that never finished: a killed trial's retry was queued as the epoch
    budget was met, so no worker would run it and every later run waited on it, training nothing.
    Now it is closed, FAIL with its reason, and the study is done."""
    extra = "\n[checkpoint]\nevery_epochs = 1\n"
    path = write_study(
        tmp_path, image_folder, trials=2, epochs=2, pruner='kind = "none"', extra=extra
    )
    path.write_text(path.read_text().replace("seed = 7", "seed = 7\nepochs_budget = 2"))
    url = f"sqlite:///{tmp_path / 's.db'}"
    config = load_study_config(path)
    options = WorkerOptions(url, "cpu", cache_dir, progress=False)
    run_worker(config, options, create=True)  # trial 0 trains both epochs: the budget is met
    study = optuna.load_study(study_name=NAME, storage=url)
    killed = study.ask()  # a trial whose worker was killed, failed and queued to resume
    suggest(killed, config)
    frozen = study.tell(killed, state=TrialState.FAIL)
    queue_retry(study, frozen, 2, "its worker is gone")

    run_worker(config, options)
    *_, retry = trials_of(url)
    assert retry.user_attrs[attrs.RETRY_OF] == killed.number
    assert retry.state == TrialState.FAIL
    assert "epoch budget was met" in retry.user_attrs["fail_reason"]
    assert not [t for t in trials_of(url) if t.state in (TrialState.WAITING, TrialState.RUNNING)]
