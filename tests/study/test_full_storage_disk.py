"""A SQLite storage whose disk fills up: one line naming the file, that its disk is full and what
to do, exit status 2, and the trial that was running resumed once there is room again. Before, a
worker died with Optuna's "invalid data in the commit" traceback, its trial left RUNNING, and on a
disk full before it started the file was called damaged (a disk I/O error)."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import time
from pathlib import Path

from optuna.trial import TrialState

from search import attrs
from search.cli import main
from search.study.storage import open_storage
from tests.helpers.images import make_image_folder
from tests.helpers.studies import trials_of, write_study

NAME = "test-study"
REPOSITORY = Path(__file__).parents[2]


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as file, contextlib.suppress(OSError):
        while file.write(b"\0" * 4096):  # until no free block is left
            pass
    return filler


def _says_the_disk_is_full(path: Path, err: str) -> bool:
    lines = err.splitlines()
    return (
        "Traceback" not in err
        and "damaged" not in err
        and bool(lines)
        and lines[-1].startswith(f"hpsearch: error: the disk of SQLite storage {path} is full (")
        and "free space on that disk, then run again" in lines[-1]
    )


def test_a_full_storage_disk_is_one_line_and_its_trial_resumes_once_there_is_room(
    tmp_path, small_disks, capsys, one_torch_thread
):
    disk = small_disks.mount(tmp_path / "disk", "2m")
    path = disk / "studies.db"
    images = make_image_folder(tmp_path / "images", train_per_class=8, val_per_class=4)
    study = write_study(tmp_path, images, trials=1, epochs=3, pruner='kind = "none"')
    common = ["--storage", f"sqlite:///{path}", "--device", "cpu", "--no-progress"]
    common += ["--cache-dir", str(tmp_path / "cache")]
    assert main(["run", str(study), "--create-only", *common]) == 0
    worker = ["worker", "--study", NAME, *common]
    worker += ["--checkpoint-dir", str(tmp_path / "checkpoints")]  # on a disk with room

    # Full before the worker starts: no damage, and nothing started. The storage `run` opened is
    # closed as when its process ends: SQLite removes its -shm file, which a full disk refuses
    # to make again ("disk I/O error", which the file's quick check took for damage)
    gc.collect()
    assert not Path(f"{path}-shm").exists()
    filler = _fill(disk)
    capsys.readouterr()
    assert main(worker) == 2
    assert _says_the_disk_is_full(path, capsys.readouterr().err)
    filler.unlink()

    # Full while a worker process trains its trial: it ends with the same line, exit status 2
    process = subprocess.Popen(
        [sys.executable, "-m", "search", *worker],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    storage = open_storage(f"sqlite:///{path}", create=False)
    study_id = storage.get_study_id_from_name(NAME)
    while not storage.get_all_trials(study_id, states=(TrialState.RUNNING,)):
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.05)
    storage.engine.dispose()
    filler = _fill(disk)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err
    assert _says_the_disk_is_full(path, err), err

    # Room again: the next worker resumes the trial the full disk stopped
    filler.unlink()
    assert main(worker) == 0, capsys.readouterr().err
    trials = trials_of(f"sqlite:///{path}")
    assert [trial.state for trial in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs[attrs.RETRY_OF] == 0
