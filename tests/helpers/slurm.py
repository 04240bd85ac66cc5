"""What the `hpsearch slurm` tests share: running the command in-process, the marker of a test on
the real cluster, waiting for a job, and stand-ins for the commands and the worker a job runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from search.cli import main
from tests.helpers import postgres


def needs_slurm(test):
    """A test on the real cluster: marked `slurm`, skipped where there is none. One at a time
    (xdist_group): the single node's CPUs hold one job array, a second would wait in the queue."""
    for mark in (
        pytest.mark.slurm,
        pytest.mark.xdist_group("slurm"),
        pytest.mark.skipif(
            shutil.which("sinfo") is None,
            reason="no SLURM here: .ci/slurm-up.sh installs and starts one",
        ),
    ):
        test = mark(test)
    return test


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def tables_in(url: str) -> int:
    with psycopg.connect(postgres.server_url(database=make_url(url).database)) as connection:
        [count] = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    return count


def wait_for_job_end(job_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True)
        if not queued.stdout.strip():
            return
        time.sleep(0.3)
    subprocess.run(["scancel", job_id])
    raise AssertionError(f"job {job_id} still queued or running after {timeout} s")


def task_record(task: str) -> dict[str, str]:
    """JobState, ExitCode and Restarts of an array task (`812_1`), as `scontrol show job` reports
    them: SLURM keeps a finished job's record MinJobAge seconds (300 on .ci/slurm-up.sh's)."""
    shown = subprocess.run(
        ["scontrol", "-o", "show", "job", task], capture_output=True, text=True, check=True
    ).stdout
    keys = ("JobState", "ExitCode", "Restarts")
    return {key: re.search(rf"\b{key}=(\S+)", shown)[1] for key in keys}


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_slurm(folder: Path, monkeypatch, partitions: list[tuple[str, bool, str]]) -> None:
    """sinfo, sbatch and scontrol on PATH for a cluster that is not there: sinfo prints -o's
    format for each (name, is the default, GRES) of `partitions` that -p leaves, as the real one
    does (`debug*|(null)`); sbatch fails, as nothing should reach it; scontrol reports nothing."""
    folder.mkdir()
    executable(
        folder / "sinfo",
        f"""#!{sys.executable}
import sys
arguments = sys.argv[1:]
form = arguments[arguments.index("-o") + 1]
only = arguments[arguments.index("-p") + 1] if "-p" in arguments else None
for name, default, gres in {partitions!r}:
    if only in (None, name):
        print(form.replace("%P", name + ("*" if default else "")).replace("%G", gres))
""",
    )
    executable(folder / "sbatch", "#!/bin/sh\necho 'sbatch: fake, not to be reached' >&2\nexit 1\n")
    executable(folder / "scontrol", "#!/bin/sh\nexit 0\n")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
