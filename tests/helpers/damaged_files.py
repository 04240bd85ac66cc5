"""Damage done to a SQLite study file for real: bytes of a page in its middle overwritten, as a
failing disk or a copy taken mid-write leaves them, the file's header left whole."""

from __future__ import annotations

import sqlite3
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
