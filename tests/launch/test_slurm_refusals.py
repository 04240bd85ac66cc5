"""What `hpsearch slurm` refuses and says, found by using it as a cluster's user does: a --time
sbatch cannot read, a job array sbatch would refuse (said before the study is made, not after), a
study with nothing left to run (a job array that would end at once, COMPLETED, having done
nothing), an sbatch that fails once the study is made, and the line to follow a submitted job.
None of them queues a job: fast beside the other SLURM tests, which wait for tasks to run."""

from __future__ import annotations

import re
import subprocess

import pytest

from search.launch.slurm_job import SlurmJob
from tests.helpers.slurm import executable, fake_slurm, needs_slurm, run_cli, tables_in
from tests.helpers.studies import write_study


@pytest.mark.parametrize("time", ["10m", "1h", "1:2:3:4", "1.5", "2 days"])
def test_a_time_limit_sbatch_cannot_read_is_refused_with_its_formats(
    tmp_path, image_folder, capsys, time
):
    """sbatch said only "Invalid --time specification", once the study was made; a dry run took
    it and printed a script sbatch would refuse."""
    study = write_study(tmp_path, image_folder, name="times")
    (tmp_path / "ckpt").mkdir()
    flags = ["--workers", "1", "--storage", "postgresql+psycopg://u@db/x", "--checkpoint-dir"]
    status, out, err = run_cli(capsys, "slurm", study, *flags, "ckpt", "--time", time, "--dry-run")
    assert (status, out) == (2, "") and len(err.strip().splitlines()) == 1, err
    assert f"--time {time!r} is not a time limit SLURM reads" in err and "4:00:00" in err
    for readable in ("90", "4:00:00", "1-12", "2-0:30", "UNLIMITED", "infinite"):
        assert SlurmJob(workers=1, time=readable).time == readable


@pytest.mark.parametrize(
    "argument, option, instead",
    [
        ("--time=3", "--time", "give --time, which is checked"),  # requeued without end
        ("-t 3", "-t", "give --time"),
        ("--array=0-3", "--array", "give --workers"),  # four tasks for --workers 1
        ("-a0-3", "-a", "give --workers"),
        ("--signal=B:USR1@10", "--signal", "give --signal-seconds"),
        ("--output /tmp/x.log", "--output", "hpsearch writes each task's log under"),
        ("--partition=gpu", "--partition", "give --partition"),
        ("--qos=low -t 3", "-t", "give --time"),  # sbatch reads every option of a line
        ("--tim=3", "--time", "give --time"),  # getopt takes a long name's unambiguous start
        ("--ar=0-3", "--array", "give --workers"),
    ],
)
def test_an_sbatch_option_the_script_sets_itself_is_refused_naming_the_flag(
    tmp_path, image_folder, capsys, argument, option, instead
):
    study = write_study(tmp_path, image_folder, name="owned")
    (tmp_path / "ckpt").mkdir()
    flags = ["--workers", "1", "--storage", "postgresql+psycopg://u@db/x", "--checkpoint-dir"]
    status, out, err = run_cli(
        capsys, "slurm", study, *flags, "ckpt", f"--sbatch={argument}", "--dry-run"
    )
    assert (status, out) == (2, "") and len(err.strip().splitlines()) == 1, err
    assert f"sets sbatch's {option}, which the job's script sets itself: {instead}" in err
    others = ("--qos=low", "--gres=gpu:a100:1", "--exclusive", "--mem-per-cpu=4G", "-C a100")
    others += ("--gpus=2",)  # sbatch's own option, though it starts --gpus-per-task's name
    assert SlurmJob(workers=1, sbatch=others).sbatch == others


@needs_slurm
@pytest.mark.parametrize(
    "flags, expect",
    [
        (["--partition", "no-such-partition"], "invalid partition specified: no-such-partition"),
        (["--cpus-per-worker", "100000"], "--cpus-per-worker 100000"),
    ],
    ids=["unknown-partition", "more-cpus-than-a-node"],
)
def test_a_job_array_sbatch_would_refuse_is_refused_before_anything_is_made(
    tmp_path, image_folder, pg_url, capsys, flags, expect
):
    """sbatch refused it only after the study, its tables and the logs' folder were made, in two
    lines that named neither what to fix nor where to look."""
    study = write_study(tmp_path, image_folder, name="refused-by-sbatch")
    (tmp_path / "ckpt").mkdir()
    base = ["--workers", "2", "--storage", pg_url, "--checkpoint-dir", "ckpt"]
    status, out, err = run_cli(capsys, "slurm", study, *base, "--gpus-per-worker", "0", *flags)
    try:
        assert (status, out) == (2, "") and len(err.strip().splitlines()) == 1, err
        assert "sbatch refuses this job array" in err and expect in err and "sinfo" in err
        assert tables_in(pg_url) == 0 and not (tmp_path / "ckpt" / "slurm-logs").exists()
    finally:
        subprocess.run(["scancel", "--name", "hpsearch-refused-by-sbatch"])


@needs_slurm
@pytest.mark.parametrize(
    "budget, refusal",
    [
        (
            "trials = 1",
            "1 of its 1 trials are finished and none is running or queued, so every task would "
            "end at once; give --trials N (above 1)",
        ),
        ("trials = 3\nepochs_budget = 1", "it trained its epochs_budget of 1 epochs (1 trained)"),
    ],
    ids=["trials spent", "epochs spent"],
)
def test_a_study_with_nothing_left_to_run_is_refused_and_no_job_is_queued(
    tmp_path, image_folder, cache_dir, pg_url, capsys, budget, refusal
):
    """Its budget spent, every task of the array found nothing to run and ended at once: the job
    COMPLETED, having done nothing, and the command had said `Submitted batch job N`."""
    # No pruner: a median one warns that one epoch leaves it nothing to stop, a line of its own
    none = 'kind = "none"'
    study = write_study(tmp_path, image_folder, name="all-done", trials=1, epochs=1, pruner=none)
    study.write_text(study.read_text().replace("\ntrials = 1\n", f"\n{budget}\n"))
    (tmp_path / "ckpt").mkdir()
    shared = ["--storage", pg_url, "--checkpoint-dir", "ckpt", "--cache-dir", cache_dir]
    status, _, err = run_cli(capsys, "run", study, *shared)
    assert status == 0, err
    try:
        status, out, err = run_cli(capsys, "slurm", study, *shared, "--workers", "2")
        assert (status, out) == (2, "") and len(err.strip().splitlines()) == 1, err
        assert f"study 'all-done' has nothing left to run: {refusal}" in err
        queued = subprocess.run(
            ["squeue", "-h", "--name", "hpsearch-all-done"], capture_output=True, text=True
        )
        assert not queued.stdout.strip() and not (tmp_path / "ckpt" / "slurm-logs").exists()
    finally:
        subprocess.run(["scancel", "--name", "hpsearch-all-done"])


# sbatch as on a cluster that takes the job array when asked with --test-only, and then refuses
# it: a limit met in between, or a controller that went away
SBATCH_REFUSING_THE_SUBMISSION = """#!/bin/sh
case "$*" in *--test-only*) exit 0 ;; esac
echo 'sbatch: error: Batch job submission failed: Job violates accounting/QOS policy' >&2
echo 'sbatch: error: (job submit limit, size and/or time limits)' >&2
exit 1
"""


def test_an_sbatch_failing_once_the_study_is_made_says_so_in_one_line(
    tmp_path, image_folder, pg_url, capsys, monkeypatch
):
    fake_slurm(tmp_path / "bin", monkeypatch, [("debug", True, "(null)")])
    executable(tmp_path / "bin" / "sbatch", SBATCH_REFUSING_THE_SUBMISSION)
    study = write_study(tmp_path, image_folder, name="made-then-refused")
    (tmp_path / "ckpt").mkdir()
    flags = ["--workers", "1", "--storage", pg_url, "--checkpoint-dir", "ckpt"]
    status, _, err = run_cli(capsys, "slurm", study, *flags)
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert "Job violates accounting/QOS policy" in err and "sbatch: error" not in err
    assert "study 'made-then-refused' is ready in the storage, but no task was submitted" in err


def test_the_help_names_the_signal_that_warns_a_task_of_its_time_limit(capsys):
    """It said SIGTERM, which a requeue, a preemption or scancel sends: the time limit's warning is
    SIGUSR1 (`--signal=B:USR1@SECONDS`), after which the task requeues itself."""
    with pytest.raises(SystemExit):
        run_cli(capsys, "slurm", "--help")
    help_text = " ".join(capsys.readouterr().out.split())
    (signal_seconds,) = re.findall(r"--signal-seconds SIGNAL_SECONDS (.*?)\(default", help_text)
    assert "SIGUSR1" in signal_seconds and "SIGTERM" not in signal_seconds


# sbatch as on a cluster that takes the job array: --test-only says nothing, a submission its id
SBATCH_TAKING_IT = """#!/bin/sh
case "$*" in *--test-only*) exit 0 ;; esac
cat >/dev/null
echo '4242'
"""


def test_the_line_to_follow_the_job_works_when_copied(
    tmp_path, image_folder, pg_url, capsys, monkeypatch
):
    """It showed the password as *** in a `--storage` to copy, which then failed to log in, and
    left a query's `&` unquoted for the shell: $HPSEARCH_STORAGE serves `hpsearch status` as it
    is, and a URL given by --storage is quoted."""
    fake_slurm(tmp_path / "bin", monkeypatch, [("debug", True, "(null)")])
    executable(tmp_path / "bin" / "sbatch", SBATCH_TAKING_IT)
    study = write_study(tmp_path, image_folder, name="followed")
    (tmp_path / "ckpt").mkdir()
    url = pg_url.replace("root@", "root:Pw-9@")  # trust auth: any password is accepted
    monkeypatch.setenv("HPSEARCH_STORAGE", url)
    flags = ["--workers", "1", "--checkpoint-dir", "ckpt"]
    status, out, err = run_cli(capsys, "slurm", study, *flags)
    assert (status, out) == (0, "Submitted batch job 4242\n"), err
    assert "follow it: hpsearch status --study followed; squeue -j 4242;" in err
    with_query = f"{url}?connect_timeout=5&application_name=hps"
    status, _, err = run_cli(capsys, "slurm", study, *flags, "--storage", with_query)
    shown = with_query.replace("Pw-9", "***")
    assert status == 0 and f"hpsearch status --study followed --storage '{shown}' (" in err
    assert "Pw-9" not in err
