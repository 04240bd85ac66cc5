"""`hpsearch slurm` on a real single-node SLURM cluster (`.ci/slurm-up.sh` starts one): the job
array's tasks share the budget, a requeued task's trial resumes, and no password leaks.

The script and the refusals need no cluster; the rest skips, saying why, where `sinfo` is absent.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import attrs
from search.launch.slurm_cluster import max_array_size
from tests.helpers.slurm import needs_slurm, run_cli, tables_in, wait_for_job_end
from tests.helpers.studies import write_study

SECRET = "Sl0rmSecret-7"


def test_the_dry_run_prints_the_array_script_line_by_line(tmp_path, image_folder, capsys):
    study = write_study(tmp_path, image_folder, name="arr")
    (tmp_path / "ckpt").mkdir()
    status, out, err = run_cli(
        capsys, "slurm", study, "--workers", "3", "--concurrent", "2", "--dry-run",
        "--storage", f"postgresql+psycopg://u:{SECRET}@db/x", "--checkpoint-dir", "ckpt",
        "--partition", "gpu", "--account", "lab", "--time", "4:00:00", "--gpus-per-worker", "1",
        "--cpus-per-worker", "8", "--mem", "32G", "--sbatch=--qos=low", "--python", "/opt/py",
        "--setup", "module load cuda/12", "--signal-seconds", "300",
    )  # fmt: skip
    assert status == 0, err
    checkpoints = tmp_path / "ckpt"
    worker = (
        f"/opt/py -m search worker --study arr --data {image_folder} --checkpoint-dir "
        f"{checkpoints} --device cuda --no-progress &"
    )
    assert out.splitlines() == [
        "#!/bin/bash",
        '#SBATCH --job-name="hpsearch-arr"',
        "#SBATCH --array=0-2%2",
        "#SBATCH --requeue",
        "#SBATCH --signal=B:USR1@300",
        "#SBATCH --open-mode=append",
        f'#SBATCH --output="{checkpoints}/slurm-logs/hpsearch-arr-%A_%a.log"',
        "#SBATCH --partition=gpu",
        "#SBATCH --account=lab",
        "#SBATCH --time=4:00:00",
        "#SBATCH --ntasks=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --mem=32G",
        "#SBATCH --qos=low",
        "",
        "module load cuda/12",
        "# A line of the log, as the worker writes its own, saying what the worker cannot know",
        "say() { echo \"$(date '+%Y-%m-%d %H:%M:%S') $1\" >&2; }",
        "# --python must run hpsearch on this node",
        "hpsearch_python=/opt/py",
        'ran=$("$hpsearch_python" -c "import search.cli; print(\'hpsearch\')" 2>/dev/null)',
        'if [ "$ran" != hpsearch ]; then',
        '    say "--python $hpsearch_python cannot run hpsearch on $(hostname): install it there, '
        'or give a --python (and --setup) that can"',
        "    exit 2",
        "fi",
        "# torch's threads: the task's CPUs, not the node's",
        "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}",
        worker,
        "worker=$!",
        "# On either signal the worker writes its last finished epoch, queues its trial to resume",
        "# and exits. USR1, the time limit is near: this task asks to be requeued. TERM, SLURM",
        "# requeues, preempts or cancels it: SLURM decides what follows. The task exits as its",
        "# worker did: one that failed while stopping ends FAILED, and is not run again.",
        "stop() {",
        '    [ "$1" = requeue ] && say "SIGUSR1: the time limit is near; stopping the worker"',
        '    kill -TERM "$worker" 2>/dev/null',
        '    wait "$worker"',
        "    local stopped=$?",
        "    trap '' USR1 TERM  # the worker is gone: the requeue's own TERM runs no stop",
        '    if [ "$stopped" = 0 ] && [ "$1" = requeue ]; then',
        '        say "requeueing this task; its trial resumes on whichever task takes it next"',
        '        scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
        '    elif [ "$1" = requeue ]; then',
        '        say "not requeued: the worker failed while stopping (exit status $stopped)"',
        "    fi",
        '    exit "$stopped"',
        "}",
        "trap 'stop requeue' USR1",
        "trap 'stop' TERM",
        'wait "$worker"',
    ]
    assert SECRET not in out + err


def test_tasks_log_json_when_asked(tmp_path, image_folder, capsys):
    study = write_study(tmp_path, image_folder, name="arr")
    (tmp_path / "ckpt").mkdir()
    status, out, err = run_cli(
        capsys, "slurm", study, "--workers", "2", "--dry-run", "--log-format", "json",
        "--storage", "postgresql+psycopg://u@db/x", "--checkpoint-dir", "ckpt",
    )  # fmt: skip
    assert status == 0, err
    (worker,) = [line for line in out.splitlines() if " -m search worker " in line]
    assert worker.endswith(" --no-progress --log-format json &")


def test_tasks_train_as_many_trials_at_once_as_asked(tmp_path, image_folder, capsys):
    study = write_study(tmp_path, image_folder, name="arr")
    (tmp_path / "ckpt").mkdir()
    status, out, err = run_cli(
        capsys, "slurm", study, "--workers", "2", "--dry-run", "--trials-per-worker", "3",
        "--storage", "postgresql+psycopg://u@db/x", "--checkpoint-dir", "ckpt",
    )  # fmt: skip
    assert status == 0, err
    (worker,) = [line for line in out.splitlines() if " -m search worker " in line]
    assert worker.endswith(" --no-progress --trials-per-worker 3 &")


@pytest.mark.parametrize(
    "storage, expect",
    [
        ("sqlite:///studies.db", "SQLite on a network file system corrupts"),
        ("postgresql+psycopg://root@127.0.0.1:1/x", "cannot reach storage"),
    ],
    ids=["sqlite", "unreachable"],
)
def test_a_storage_the_nodes_cannot_share_is_refused_before_submitting(
    tmp_path, image_folder, capsys, storage, expect
):
    study = write_study(tmp_path, image_folder, name="refused")
    (tmp_path / "ckpt").mkdir()
    flags = ["--workers", "2", "--storage", storage, "--checkpoint-dir", "ckpt"]
    status, _, err = run_cli(capsys, "slurm", study, *flags)
    assert status == 2 and expect in err and len(err.strip().splitlines()) == 1, err
    assert (
        not (tmp_path / "studies.db").exists() and not (tmp_path / "ckpt" / "slurm-logs").exists()
    )
    if shutil.which("squeue"):
        queued = subprocess.run(["squeue", "-h", "-n", "hpsearch-refused"], capture_output=True)
        assert not queued.stdout.strip()


def test_away_from_the_cluster_a_good_command_is_refused_before_anything_is_made(
    tmp_path, image_folder, pg_url, capsys, monkeypatch
):
    """The command's input checked as on a login node, then the one refusal a laptop gets: before
    the data is decoded and before the study, its tables or the logs' folder are made."""
    study = write_study(tmp_path, image_folder, name="away")
    (tmp_path / "ckpt").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    flags = ["--workers", "2", "--storage", pg_url, "--checkpoint-dir", "ckpt"]
    status, _, err = run_cli(capsys, "slurm", study, *flags)
    assert status == 2 and "sbatch is not on PATH" in err and len(err.strip().splitlines()) == 1
    assert tables_in(pg_url) == 0
    assert (
        not (tmp_path / "user-cache").exists() and not (tmp_path / "ckpt" / "slurm-logs").exists()
    )


@needs_slurm
def test_more_workers_than_the_cluster_s_arrays_hold_are_refused_before_anything_is_made(
    tmp_path, image_folder, pg_url, capsys
):
    limit = max_array_size()
    assert limit is not None, "scontrol reports no MaxArraySize"
    study = write_study(tmp_path, image_folder, name="too-many")
    (tmp_path / "ckpt").mkdir()
    flags = ["--workers", limit + 1, "--storage", pg_url, "--checkpoint-dir", "ckpt"]
    status, _, err = run_cli(capsys, "slurm", study, *flags)
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--workers {limit + 1} is more tasks than" in err and f"MaxArraySize = {limit}" in err
    assert tables_in(pg_url) == 0 and not (tmp_path / "ckpt" / "slurm-logs").exists()


def test_a_checkpoint_folder_left_to_the_default_is_refused(tmp_path, image_folder, capsys):
    study = write_study(tmp_path, image_folder)
    flags = ["--workers", "2", "--storage", "postgresql+psycopg://root@db/x", "--dry-run"]
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("HPSEARCH_CHECKPOINTS")
        status, _, err = run_cli(capsys, "slurm", study, *flags)
    assert status == 2 and "local to each node" in err


def _submit(capsys, study: Path, url: str, checkpoints: Path, workers: int) -> str:
    flags = ["--workers", str(workers), "--storage", url, "--checkpoint-dir", checkpoints]
    status, out, err = run_cli(capsys, "slurm", study, *flags, "--gpus-per-worker", "0")
    assert status == 0, err
    assert out.startswith("Submitted batch job ") and "squeue -j " in err
    return out.split()[-1]


@needs_slurm
def test_a_job_array_shares_the_budget_and_never_shows_the_password(
    tmp_path, image_folder, cache_dir, pg_url, capsys
):
    url = pg_url.replace("root@", f"root:{SECRET}@")  # trust auth: any password is accepted
    # Trials long enough (6 epochs, none pruned) that one task cannot run all four before the
    # other has started, on a loaded machine too
    study = write_study(tmp_path, image_folder, trials=4, epochs=6, pruner='kind = "none"')
    checkpoints = tmp_path / "ckpt"
    checkpoints.mkdir()
    submitted = time.time()
    job_id = _submit(capsys, study, url, checkpoints, workers=2)
    wait_for_job_end(job_id, 600)
    trials = optuna.load_study(study_name="test-study", storage=pg_url).trials
    finished = [
        trial for trial in trials if trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
    ]
    assert len(finished) == 4 and all(trial.state.is_finished() for trial in trials)
    tasks = {trial.user_attrs[attrs.WORKER].get("slurm_task") for trial in trials}
    assert tasks == {"0", "1"}, "both tasks of the array ran trials"
    first = min(trials, key=lambda trial: trial.datetime_start)
    first_epoch_done = first.datetime_start.timestamp() + first.user_attrs["history"][0]["seconds"]
    with capsys.disabled():  # a figure for the closing note, printed under -s
        print(f"\nslurm: first trial's first epoch done {first_epoch_done - submitted:.1f} s "
              "after `hpsearch slurm` began")  # fmt: skip
    logs = "".join(path.read_text() for path in (checkpoints / "slurm-logs").glob("*.log"))
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True)
    assert SECRET not in logs + shown.stdout + capsys.readouterr().err


@needs_slurm
def test_a_requeued_task_s_trial_resumes_from_its_checkpoint(
    tmp_path, image_folder, cache_dir, pg_url, capsys
):
    # Three epochs to spare once the first is on disk and the job is requeued
    study = write_study(
        tmp_path, image_folder, trials=1, epochs=4, pruner='kind = "none"',
        extra="\n[checkpoint]\nevery_epochs = 1\n",
    )  # fmt: skip
    checkpoints = tmp_path / "ckpt"
    checkpoints.mkdir()
    job_id = _submit(capsys, study, pg_url, checkpoints, workers=1)
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("*/trial-0/last.pt")):
        assert time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.2)
    requeued = time.time()
    subprocess.run(["scontrol", "requeue", f"{job_id}_0"], check=True)
    wait_for_job_end(job_id, 600)
    trials = optuna.load_study(study_name="test-study", storage=pg_url).trials
    retry = next(trial for trial in trials if attrs.RETRY_OF in trial.user_attrs)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["resumed_from_epoch"] >= 1
    assert all(trial.state.is_finished() for trial in trials)
    waited = retry.datetime_start.timestamp() - requeued
    resumed = retry.user_attrs["resumed_from_epoch"]
    with capsys.disabled():
        print(f"\nslurm requeue: retry started {waited:.1f} s later, from epoch {resumed}")
