"""Damage done to files for real, as a failing disk or a copy taken mid-write leaves them: bytes
of a SQLite study file's middle page overwritten, its header left whole; bytes of the largest
tensor in a file torch.save wrote overwritten, its size and zip structure left whole."""

from __future__ import annotations

import sqlite3
import zipfile
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search.study.optuna_compat import cached_storage
from search.study.storage import open_storage
from tests.helpers.bulk_trials import add_trials_in_bulk

HEADER_BYTES = 100  # SQLite's file header, on page 1
EPOCHS = 20


def add_finished_trials(url: str, study_name: str, count: int) -> None:
    """`count` COMPLETE trials, each with a curve and an epoch history as a worker records them:
    the file's pages are then mostly trial attributes, as a real study's are."""
    study = optuna.load_study(study_name=study_name, storage=cached_storage(open_storage(url)))
    history = [
        {"epoch": epoch, "train_loss": 1.2345678, "val_loss": 1.3456789, "val_top1": 0.5678912}
        for epoch in range(1, EPOCHS + 1)
    ]
    trials = [
        create_trial(
            state=TrialState.COMPLETE,
            value=0.5,
            params={"lr": 0.01},
            distributions={"lr": FloatDistribution(1e-3, 0.1, log=True)},
            intermediate_values=dict.fromkeys(range(1, EPOCHS + 1), 0.5),
            user_attrs={"epochs_run": EPOCHS, "history": history},
        )
        for _ in range(count)
    ]
    add_trials_in_bulk(study, trials)


def damage_a_middle_page(path: Path) -> int:
    """Overwrite the first bytes of the page in the middle of the SQLite file at `path` (its page
    header, or an overflow page's link); returns the page's number. Every write is moved into the
    file first: a page the write-ahead log holds a newer copy of would hide the damage."""
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size, pages = (
            connection.execute(f"PRAGMA {pragma}").fetchone()[0]
            for pragma in ("page_size", "page_count")
        )
    connection.close()
    page = pages // 2 + 1
    assert page > 1 and (page - 1) * page_size >= HEADER_BYTES
    with path.open("r+b") as file:
        file.seek((page - 1) * page_size)
        file.write(b"\xa5" * 64)
    return page


def damage_a_tensor_in_place(path: Path) -> None:
    """Overwrite bytes in the middle of the largest record of `path` (a torch.save archive):
    torch.load reads it as it reads any, the zip's checksum of that record alone tells."""
    with zipfile.ZipFile(path) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)
    with path.open("r+b") as file:
        file.seek(record.header_offset + 26)
        name_length = int.from_bytes(file.read(2), "little")
        extra_length = int.from_bytes(file.read(2), "little")
        file.seek(name_length + extra_length + record.file_size // 2, 1)
        file.write(b"\x7f" * 64)  # 64 bytes of float32 3.4e38: a loss gone to inf, if trained on
