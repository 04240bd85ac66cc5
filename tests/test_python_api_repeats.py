"""The Python API called again and again in one process, as a notebook does: each search leaves
the process as it found it, so the tenth call behaves (and costs) as the first did."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

from optuna.trial import TrialState

import search
from tests.helpers.studies import write_study


def _open_files_under(folder: Path) -> list[str]:
    """The files under `folder` this process holds open (a storage's connections, among them)."""
    opened = []
    for descriptor in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{descriptor}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
        if target.startswith(str(folder)):
            opened.append(target)
    return opened


def _search(folder: Path, image_folder: Path, cache_dir: Path, name: str, **options) -> None:
    """A one-trial search in a storage of its own, its study dropped as a notebook's cell's is."""
    storage = folder / f"{name}.db"
    study_file = write_study(folder, image_folder, name=name, trials=1, epochs=1)
    study = search.run_study(
        study_file,
        storage=f"sqlite:///{storage}",
        image_size=16,
        device="cpu",
        cache_dir=cache_dir,
        progress=False,
        **options,
    )
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE]


def test_a_search_done_leaves_nothing_frozen_nor_its_storage_open(
    tmp_path, image_folder, cache_dir, one_torch_thread
):
    """A worker freezes what lives as long as it does (gc.freeze): kept frozen once the search
    returned, each search's study, storage connections and data stayed for good, memory and
    open files growing call after call."""
    frozen_before = gc.get_freeze_count()
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        _search(folder, image_folder, cache_dir, name)
        gc.collect()  # what the notebook no longer holds is freed by the next collection
        assert gc.get_freeze_count() == frozen_before
        assert _open_files_under(folder) == []  # its SQLite file, -wal and -shm closed


def test_a_search_s_log_format_ends_with_it(tmp_path, image_folder, cache_dir, capfd):
    """A JSON search's handler stayed on hpsearch's and trainer's loggers: the notebook's later
    calls (a `train`, an `export_best`) wrote their warnings as JSON lines of a log long ended."""
    loggers = [logging.getLogger(name) for name in ("hpsearch", "trainer")]
    handlers_before = [list(logger.handlers) for logger in loggers]
    _search(tmp_path, image_folder, cache_dir, "json-search", log_format="json")
    assert '"event": "worker_ended"' in capfd.readouterr().err  # the search's own log: JSON
    logging.getLogger("trainer.checkpoint").warning("checkpoint set aside")
    logging.getLogger("hpsearch.storage").warning("storage unreachable; retrying")
    assert '"event"' not in capfd.readouterr().err
    assert [list(logger.handlers) for logger in loggers] == handlers_before
