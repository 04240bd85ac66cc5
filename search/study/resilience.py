"""Surviving a database that restarts: storage calls that wait and reconnect.

The heartbeat that keeps beating through an outage, so a live trial never looks dead, is the
worker's (search.run.liveness); it calls the storage `without_retries`, on a deadline of its own.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage

logger = logging.getLogger("hpsearch.storage")

BACKOFF_SECONDS = (0.5, 1, 2, 4, 8, 15, 30)  # then 30 s until MAX_OUTAGE_SECONDS have passed
MAX_OUTAGE_SECONDS = 600.0


def is_connection_error(error: BaseException) -> bool:
    """True for a lost or refused connection; false for bad data, which retrying cannot fix."""
    if isinstance(error, optuna.exceptions.StorageInternalError) and error.__cause__ is not None:
        return is_connection_error(error.__cause__)
    if isinstance(error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
        return True
    return isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated


def call_with_retries(
    function: Callable[..., Any], *args: Any, max_outage: float = MAX_OUTAGE_SECONDS, **kwargs: Any
) -> Any:
    started = time.monotonic()
    for attempt in itertools.count():
        try:
            return function(*args, **kwargs)
        except Exception as error:
            waited = time.monotonic() - started
            if not is_connection_error(error) or waited >= max_outage:
                raise
            delay = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)]
            logger.warning(
                "storage unreachable (%s); retry %d in %.1f s, %.0f s into the outage",
                _first_line(error),
                attempt + 1,
                delay,
                waited,
            )
            time.sleep(delay)


def _first_line(error: BaseException) -> str:
    cause = error.__cause__ or error
    text = str(getattr(cause, "orig", None) or cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def _retrying(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: RDBStorage, *args: Any, **kwargs: Any) -> Any:
        return call_with_retries(method, self, *args, **kwargs)

    return wrapper


class ResilientRDBStorage(RDBStorage):
    """An RDBStorage whose every call waits out a database outage with bounded, logged backoff."""


_STORAGE_METHODS = [name for name in vars(optuna.storages.BaseStorage) if not name.startswith("__")]
for _name in [*_STORAGE_METHODS, "record_heartbeat", "_get_stale_trial_ids"]:
    if callable(getattr(RDBStorage, _name, None)):
        setattr(ResilientRDBStorage, _name, _retrying(getattr(RDBStorage, _name)))


def without_retries(storage: optuna.storages.BaseStorage, name: str) -> Callable[..., Any]:
    """The storage's method `name` as the database driver would run it, without waiting out an
    outage: for a caller with a shorter deadline of its own (a heartbeat)."""
    if isinstance(storage, ResilientRDBStorage):
        return functools.partial(getattr(RDBStorage, name), storage)
    return getattr(storage, name)
