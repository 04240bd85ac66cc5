"""A SQLite storage whose disk fills up: one line naming the file, that its disk is full and what
to do, and the trial that was running resumed once there is room again. Before, a worker died with
Optuna's "invalid data in the commit" traceback, and on a disk full before it started, the file was
called damaged (a disk I/O error)."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from optuna.trial import TrialState

from search import attrs
from search.cli import main
from search.study.storage import open_storage
from tests.helpers.studies import trials_of, write_study

NAME = "test-study"


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as file, contextlib.suppress(OSError):
        while file.write(b"\0" * 4096):  # until no free block is left
            pass
    return filler


def _one_line_naming_the_full_disk(path: Path, err: str) -> bool:
    last = err.splitlines()[-1] if err else ""
    return (
        "Traceback" not in err
        and last.startswith("hpsearch: error: ")
        and str(path) in last
        and "full" in last
        and "free space" in last
    )


def _study(tmp_path: Path, image_folder: Path, disk: Path, epochs: int) -> tuple[str, list[str]]:
    study = write_study(tmp_path, image_folder, trials=1, epochs=epochs, pruner='kind = "none"')
    # Beats every second, dead after 2 silent: the next worker resumes a stranded trial at once
    study.write_text(
        study.read_text().replace("interval_seconds = 2", "interval_seconds = 1")
        .replace("grace_seconds = 8", "grace_seconds = 2")
    )
    url = f"sqlite:///{disk / 'studies.db'}"
    common = ["--storage", url, "--device", "cpu", "--no-progress"]
    common += ["--cache-dir", str(tmp_path / "cache")]
    assert main(["run", str(study), "--create-only", *common]) == 0
    worker = ["worker", "--study", NAME, *common]
    return url, [*worker, "--checkpoint-dir", str(tmp_path / "checkpoints")]


def test_a_disk_that_fills_mid_run_is_one_line_and_the_trial_resumes(
    tmp_path, image_folder, small_disks, capsys, one_torch_thread
):
    disk = small_disks.mount(tmp_path / "disk", "2m")
    url, worker = _study(tmp_path, image_folder, disk, epochs=30)
    capsys.readouterr()
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(main(worker)))
    thread.start()
    storage = open_storage(url, create=False)
    study_id = storage.get_study_id_from_name(NAME)
    while not storage.get_all_trials(study_id, states=(TrialState.RUNNING,)):
        assert thread.is_alive()
        time.sleep(0.05)
    storage.engine.dispose()
    filler = _fill(disk)
    thread.join()

    assert status == [2]
    assert _one_line_naming_the_full_disk(disk / "studies.db", capsys.readouterr().err)
    filler.unlink()  # room again: the next worker resumes the trial
    assert main(worker) == 0, capsys.readouterr().err
    trials = trials_of(url)
    assert [t.state for t in trials if t.state != TrialState.FAIL] == [TrialState.COMPLETE]
    assert trials[-1].user_attrs[attrs.RETRY_OF] == 0


def test_a_disk_full_before_the_worker_starts_is_not_called_damage(
    tmp_path, image_folder, small_disks, capsys
):
    disk = small_disks.mount(tmp_path / "disk", "2m")
    url, worker = _study(tmp_path, image_folder, disk, epochs=1)
    filler = _fill(disk)
    capsys.readouterr()
    assert main(worker) == 2
    err = capsys.readouterr().err
    assert _one_line_naming_the_full_disk(disk / "studies.db", err) and "damaged" not in err
    filler.unlink()
    assert main(worker) == 0, capsys.readouterr().err
    assert [t.state for t in trials_of(url)] == [TrialState.COMPLETE]
