"""The batch script `hpsearch slurm` writes, read line by line, and what it refuses before anything
is made: paths sbatch must read as they are, the workers' device and storage wait, and the GPUs a
task asks for. No cluster: where sinfo matters a stand-in answers for it (tests/helpers/slurm.py);
test_slurm_tasks.py runs such scripts on the real one."""

from __future__ import annotations

import datetime
import json
import re
import subprocess

import pytest

from search.errors import LaunchError
from search.launch.slurm_job import SlurmJob
from search.run.paths import slug
from tests.helpers.slurm import fake_slurm, run_cli, tables_in
from tests.helpers.studies import write_study

STORAGE = "postgresql+psycopg://u@db/x"  # never reached by a dry run
ODD_FOLDER = "ck pt 'q\" #1 50%"  # a space, both quotes, a comment sign and a SLURM pattern sign
CPU_DEFAULT_AND_GPU_PARTITION = [("debug", True, "(null)"), ("gpu", False, "gpu:a100:4(S:0-1)")]


def dry_run(capsys, tmp_path, image_folder, *flags, name="arr", checkpoints="ckpt") -> list[str]:
    (tmp_path / name).parent.mkdir(exist_ok=True)  # the study file's, for a name holding a `/`
    study = write_study(tmp_path, image_folder, name=name)
    (tmp_path / checkpoints).mkdir(exist_ok=True)
    status, out, err = run_cli(
        capsys, "slurm", study, "--workers", "2", "--dry-run", "--storage", STORAGE,
        "--checkpoint-dir", checkpoints, *flags,
    )  # fmt: skip
    assert status == 0, err
    return out.splitlines()


def worker_line(script: list[str]) -> str:
    (worker,) = [line for line in script if " -m search worker " in line]
    return worker


def test_a_checkpoint_folder_and_study_name_of_any_printable_characters_reach_sbatch_whole(
    tmp_path, image_folder, capsys
):
    """sbatch reads `"..."` with `\\"` as one word, where an unquoted space ended --output; a `%` of
    the folder's is doubled so that SLURM does not read it as a pattern; the study's name, with a
    `/` that SLURM's %x would have made a folder of, goes into the log's name as a slug."""
    name = "my study's #1 50%/b"
    script = dry_run(capsys, tmp_path, image_folder, name=name, checkpoints=ODD_FOLDER)
    logs = f"{tmp_path}/ck pt 'q\\\" #1 50%%/slurm-logs"
    assert f'#SBATCH --output="{logs}/hpsearch-{slug(name)}-%A_%a.log"' in script
    assert f'#SBATCH --job-name="hpsearch-{name}"' in script
    assert slug(name).startswith("my_study_s__1_50__b-")


@pytest.mark.parametrize(
    "folder, named", [("ck\\pt", "a backslash"), ("ck\npt", "a line break")], ids=["\\", "newline"]
)
def test_a_checkpoint_folder_no_sbatch_output_can_name_is_refused_before_anything_is_made(
    tmp_path, image_folder, pg_url, capsys, folder, named
):
    """A backslash in --output makes SLURM drop it and leave %A_%a unexpanded; a directive ends at
    the line's end. Neither is written as a script sbatch would take and get wrong."""
    study = write_study(tmp_path, image_folder, name="odd")
    (tmp_path / folder).mkdir()
    flags = ["--workers", "1", "--storage", pg_url, "--checkpoint-dir", folder]
    status, _, err = run_cli(capsys, "slurm", study, *flags)
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert f"has {named} in its path" in err and "choose a folder without one" in err
    assert tables_in(pg_url) == 0 and not (tmp_path / folder / "slurm-logs").exists()


def test_the_tasks_train_on_the_device_asked_and_wait_for_the_storage_as_long(
    tmp_path, image_folder, capsys
):
    """--device cuda is the nodes' GPU, not this machine's, which has none in CI."""
    script = dry_run(
        capsys, tmp_path, image_folder, "--device", "cuda", "--gpus-per-worker", "1",
        "--wait-for-storage", "1200",
    )  # fmt: skip
    # SLURM 23.11 refuses --gpus-per-task without a task count
    assert "#SBATCH --gpus-per-task=1" in script and "#SBATCH --ntasks=1" in script
    assert worker_line(script).endswith(" --device cuda --no-progress --wait-for-storage 1200 &")


def test_device_cpu_asks_no_gpu_where_the_partition_has_them(
    tmp_path, image_folder, capsys, monkeypatch
):
    fake_slurm(tmp_path / "bin", monkeypatch, [("debug", True, "gpu:4")])
    script = dry_run(capsys, tmp_path, image_folder, "--device", "cpu", "--wait-for-storage", "2.5")
    assert not [line for line in script if "--gpus-per-task" in line]
    assert worker_line(script).endswith(" --device cpu --no-progress --wait-for-storage 2.5 &")


@pytest.mark.parametrize(
    "partition, gpus",
    [(None, 0), ("gpu", 1), ("debug", 0)],
    ids=["the-default-cpu-partition", "a-gpu-partition", "the-cpu-partition-named"],
)
def test_a_task_asks_for_a_gpu_where_its_own_partition_has_them(
    tmp_path, image_folder, capsys, monkeypatch, partition, gpus
):
    """A job that names no partition runs in the default one: a GPU partition beside it is not
    where its tasks run, and a GPU asked for there would keep them pending."""
    fake_slurm(tmp_path / "bin", monkeypatch, CPU_DEFAULT_AND_GPU_PARTITION)
    flags = ["--partition", partition] if partition else []
    script = dry_run(capsys, tmp_path, image_folder, *flags)
    assert ("#SBATCH --gpus-per-task=1" in script) == bool(gpus)
    assert f" --device {'cuda' if gpus else 'cpu'} --no-progress &" in worker_line(script)


@pytest.mark.parametrize(
    "flags, expect",
    [
        (["--device", "cuda", "--gpus-per-worker", "0"], "needs a GPU, but --gpus-per-worker is 0"),
        (["--device", "cuda"], "needs a GPU, but sinfo reports no GPU in the default partition"),
        (["--device", "cpu", "--gpus-per-worker", "1"], "--device cpu would leave the GPU"),
        (["--device", "cuda:1", "--gpus-per-worker", "1"], "a task sees the one GPU it asks for"),
    ],
    ids=["cuda-without-gpus", "cuda-on-a-cpu-partition", "cpu-with-a-gpu", "a-second-gpu"],
)
def test_a_device_the_tasks_gpus_do_not_fit_is_refused_before_anything_is_made(
    tmp_path, image_folder, pg_url, capsys, monkeypatch, flags, expect
):
    fake_slurm(tmp_path / "bin", monkeypatch, CPU_DEFAULT_AND_GPU_PARTITION)
    study = write_study(tmp_path, image_folder, name="devices")
    (tmp_path / "ckpt").mkdir()
    base = ["--workers", "1", "--storage", pg_url, "--checkpoint-dir", "ckpt"]
    status, _, err = run_cli(capsys, "slurm", study, *base, *flags)
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert expect in err and "--device" in err
    assert tables_in(pg_url) == 0 and not (tmp_path / "ckpt" / "slurm-logs").exists()


@pytest.mark.parametrize(
    "setting, expect",
    [
        ({"partition": ""}, "--partition is empty: give a value"),
        ({"python": " "}, "--python is empty: give a value"),
        ({"time": "4:00:00\necho another line"}, "--time must be one line"),
        ({"sbatch": ("--qos=low", "--comment=a\rb")}, "--sbatch must be one line"),
        ({"mem": "32G\n#SBATCH --exclusive"}, "--mem must be one line"),
        ({"signal_seconds": 65536}, "--signal-seconds must be 1 to 65535"),
    ],
)
def test_a_job_made_in_python_is_refused_what_the_command_line_is(setting, expect):
    """The command's parser refuses these; a SlurmJob made in Python wrote them into the script
    (an #SBATCH line of its own, an empty interpreter) or had sbatch refuse it once the study was
    made."""
    with pytest.raises(LaunchError, match=re.escape(expect)):
        SlurmJob(workers=2, **setting)


@pytest.mark.parametrize("time", ["2", "4", "1:30", "0:04:00"])
def test_a_time_limit_the_stop_warning_fills_is_refused(tmp_path, image_folder, capsys, time):
    """SLURM sends the warning at once where the limit is shorter than it (seen: 3 s into a task
    of --time 2 and the default 180 s): each task stopped as it started and was requeued, without
    end. A dry run, so that a regression submits nothing: the check is the job's, made first."""
    study = write_study(tmp_path, image_folder, name="short")
    (tmp_path / "ckpt").mkdir()
    flags = ["--workers", "1", "--storage", STORAGE, "--checkpoint-dir", "ckpt", "--time", time]
    status, out, err = run_cli(capsys, "slurm", study, *flags, "--dry-run")
    assert (status, out) == (2, "") and len(err.strip().splitlines()) == 1, err
    assert f"--time {time} (" in err and "give a longer --time or a smaller --signal-seconds" in err
    # a limit that leaves time to train, or a smaller warning, is taken
    assert SlurmJob(workers=1, time="5").time == "5"
    assert SlurmJob(workers=1, time=time, signal_seconds=10).signal_seconds == 10


def test_what_the_script_says_in_a_json_log_is_a_json_object_as_the_worker_s_lines_are(
    tmp_path, image_folder, capsys
):
    # "SIGUSR1: the time limit is near", "requeueing this task" were plain lines in a JSON log
    name = "a study's name"
    script = dry_run(capsys, tmp_path, image_folder, "--log-format", "json", name=name)
    start = script.index("say() {")
    say = "\n".join(script[start : script.index("}", start) + 1])
    message = 'not requeued: --python /opt/"py" \\ failed (exit status 1)'
    said = subprocess.run(
        ["bash", "-c", f'{say}\nsay "$1"', "script", message], capture_output=True, text=True
    )
    line = json.loads(said.stderr)
    assert (line["event"], line["study"], line["message"]) == ("note", name, message)
    assert datetime.datetime.fromisoformat(line["time"]).utcoffset() == datetime.timedelta(0)
