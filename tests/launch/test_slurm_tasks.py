"""The batch script of `hpsearch slurm` as the real cluster runs it (`.ci/slurm-up.sh`), with a
stand-in for the worker given as --python, so that a task takes seconds and does exactly what the
test needs: sbatch takes a checkpoint folder of odd characters and logs under it, and a task ends
as its worker stopped, requeued only after a clean stop."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from search.run.paths import slug
from tests.helpers.slurm import (
    executable,
    needs_slurm,
    run_cli,
    task_record,
    wait_for_job_end,
)
from tests.helpers.studies import write_study

# A stand-in's answer to the script's check that --python runs hpsearch (`python -c ...`)
ANSWERS_THE_CHECK = '#!/bin/sh\n[ "$1" = -c ] && { echo hpsearch; exit 0; }\n'


def submit(capsys, tmp_path, image_folder, pg_url, python: Path, *, name, workers, checkpoints):
    (tmp_path / name).parent.mkdir(exist_ok=True)  # the study file's, for a name holding a `/`
    study = write_study(tmp_path, image_folder, name=name)
    flags = ["--workers", workers, "--storage", pg_url, "--checkpoint-dir", checkpoints]
    status, out, err = run_cli(
        capsys, "slurm", study, *flags, "--gpus-per-worker", "0", "--python", python
    )
    assert status == 0, err
    return out.split()[-1]


@needs_slurm
def test_a_task_logs_under_a_checkpoint_folder_of_spaces_quotes_and_percent_signs(
    tmp_path, image_folder, pg_url, capsys
):
    checkpoints = tmp_path / "ck pt 'q\" #1 50%"
    checkpoints.mkdir()
    python = executable(tmp_path / "python", ANSWERS_THE_CHECK + 'printf "%s\\n" "$@"\n')
    name = "my study's #1 50%/b"
    job_id = submit(
        capsys, tmp_path, image_folder, pg_url, python, name=name, workers=1,
        checkpoints=checkpoints,
    )  # fmt: skip
    wait_for_job_end(job_id, 120)
    assert task_record(f"{job_id}_0")["JobState"] == "COMPLETED"
    log = checkpoints / "slurm-logs" / f"hpsearch-{slug(name)}-{job_id}_0.log"
    arguments = log.read_text().splitlines()
    assert arguments[arguments.index("--checkpoint-dir") + 1] == str(checkpoints)
    assert arguments[arguments.index("--study") + 1] == name


@needs_slurm
def test_a_python_that_cannot_run_hpsearch_fails_its_task_saying_so(
    tmp_path, image_folder, pg_url, capsys
):
    """/bin/true, which ignores its arguments, completed every task having done nothing; a path
    missing on the nodes failed each with a shell's "not found", and nothing more."""
    (tmp_path / "ckpt").mkdir()
    job_id = submit(
        capsys, tmp_path, image_folder, pg_url, Path("/bin/true"), name="no-python", workers=1,
        checkpoints=tmp_path / "ckpt",
    )  # fmt: skip
    wait_for_job_end(job_id, 120)
    record = task_record(f"{job_id}_0")
    assert record["JobState"] == "FAILED" and record["ExitCode"].startswith("2:"), record
    log = tmp_path / "ckpt" / "slurm-logs" / f"hpsearch-no-python-{job_id}_0.log"
    assert "--python /bin/true cannot run hpsearch on " in log.read_text()


# A worker's stand-in: it stops on SIGTERM as a worker does, taking a moment (its checkpoint), and
# exits as its task's index says: task 0 stops cleanly (0), task 1 fails while stopping (2, as on a
# full disk). Each run leaves a mark: started-TASK-RESTARTS.
STOPPING_WORKER = """#!/bin/bash
[ "$1" = -c ] && {{ echo hpsearch; exit 0; }}
trap 'stopping=1' TERM
touch "{marks}/started-$SLURM_ARRAY_TASK_ID-${{SLURM_RESTART_COUNT:-0}}"
while [ -z "$stopping" ]; do sleep 0.1; done
sleep 0.3
exit $((SLURM_ARRAY_TASK_ID * 2))
"""


@needs_slurm
def test_a_task_ends_as_its_worker_stopped_and_only_a_clean_stop_is_requeued(
    tmp_path, image_folder, pg_url, capsys
):
    """USR1, the time limit near: task 0's worker stops cleanly and the task is requeued; task 1's
    fails while stopping, and the task is FAILED with its worker's status, not run again."""
    (tmp_path / "ckpt").mkdir()
    python = executable(tmp_path / "python", STOPPING_WORKER.format(marks=tmp_path))
    job_id = submit(
        capsys, tmp_path, image_folder, pg_url, python, name="stops", workers=2,
        checkpoints=tmp_path / "ckpt",
    )  # fmt: skip
    try:
        wait_for(lambda: all((tmp_path / f"started-{task}-0").exists() for task in (0, 1)), 120)
        for task in (0, 1):  # as --signal=B:USR1 does: to the batch shell alone
            subprocess.run(["scancel", "--batch", "--signal=USR1", f"{job_id}_{task}"], check=True)
        wait_for(lambda: task_record(f"{job_id}_1")["JobState"] not in ("RUNNING", "COMPLETING"))
        wait_for(lambda: task_record(f"{job_id}_0")["Restarts"] != "0")
        failed = {"JobState": "FAILED", "ExitCode": "2:0", "Restarts": "0"}
        assert task_record(f"{job_id}_1") == failed
        assert task_record(f"{job_id}_0")["Restarts"] == "1"
        wait_for(lambda: (tmp_path / "started-0-1").exists(), 120)  # the requeued task ran again
        # Each log says why its worker was stopped, and what became of the task
        logs = tmp_path / "ckpt" / "slurm-logs"
        requeued, failed_log = (
            (logs / f"hpsearch-stops-{job_id}_{task}.log").read_text() for task in (0, 1)
        )
        for log in (requeued, failed_log):
            assert "SIGUSR1: the time limit is near; stopping the worker" in log
        assert "requeueing this task" in requeued and "requeueing" not in failed_log
        assert "not requeued: the worker failed while stopping (exit status 2)" in failed_log
    finally:
        subprocess.run(["scancel", job_id])
        wait_for_job_end(job_id, 60)


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not so after {timeout} s"
        time.sleep(0.2)
