"""A worker's view of its study: Optuna's cache of finished trials, whose pruner reads may lag.

Optuna keeps finished trials in memory (`_CachedStorage`), but every read still asks the database
for every unfinished trial, with all their attributes: one query set per read, its size growing
with the number of workers. The pruner reads the study at every epoch of every trial. Its answer
hardly moves in a few seconds (it compares with trials that finished), so inside `lagging_reads`
a read reuses what this worker read less than `seconds` ago. Every other read (the budget, the
retry claim, the dead-trial sweep, the sampler) stays fresh, and each trial's first pruner read
comes after the fresh read the worker makes before the trial, so a worker alone prunes exactly as
before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage


class LaggingCache(_CachedStorage):
    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._read_at: dict[int, float] = {}  # per study: when the database was last asked
        self._lag = threading.local()  # seconds a read in this thread may lag, 0 outside

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        lag = getattr(self._lag, "seconds", 0.0)
        if lag and time.monotonic() - self._read_at.get(study_id, float("-inf")) < lag:
            return
        super()._read_trials_from_remote_storage(study_id)
        self._read_at[study_id] = time.monotonic()

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        del state["_lag"]
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._lag = threading.local()


def worker_storage(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """What a worker opens its study on: a database behind a LaggingCache; any other storage (the
    gRPC proxy, which caches on its side) as it is."""
    return LaggingCache(storage) if isinstance(storage, RDBStorage) else storage


@contextmanager
def lagging_reads(study: optuna.Study, seconds: float) -> Iterator[None]:
    """Within: the study's reads in this thread reuse a read younger than `seconds`."""
    storage = study._storage
    if not isinstance(storage, LaggingCache):
        yield
        return
    storage._lag.seconds = seconds
    try:
        yield
    finally:
        storage._lag.seconds = 0.0
