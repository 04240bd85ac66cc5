"""Storage URLs: resolution, masking, and SQLite that several local workers can share."""

from __future__ import annotations

import multiprocessing
import warnings
from collections import Counter

import optuna
import pytest

from search.errors import StorageError
from search.study.storage import masked, open_storage


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://team:hunter2@db:5432/studies", "weird://team:hunter2@x"]
)
def test_printed_urls_never_show_the_password(url):
    assert "hunter2" not in masked(url) and "***" in masked(url)


def test_an_unsupported_url_names_what_works():
    with pytest.raises(StorageError, match="use sqlite:/// or postgresql"):
        open_storage("redis://localhost:6379")


def _ask_queued(url: str, asks: int) -> list[int]:
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="race", storage=open_storage(url))
    return [study.ask().number for _ in range(asks)]


def test_local_workers_on_sqlite_never_take_the_same_queued_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    study = optuna.create_study(study_name="race", storage=open_storage(url))
    for index in range(40):
        study.enqueue_trial({"x": float(index)})
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        taken = [
            number for numbers in pool.starmap(_ask_queued, [(url, 10)] * 4) for number in numbers
        ]
    assert len(taken) == 40 and not {n: c for n, c in Counter(taken).items() if c > 1}
