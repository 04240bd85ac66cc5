"""Every error a user can act on: one base class, so the command line has one `except`.

The base is the trainer's `TrainerError` under the product's name: `trainer/` sits below
`search/` and cannot import it, and a bad learning rate refused by the trainer is as much
the user's to fix as a bad study file. `hpsearch` prints any of these as one line and exits 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from trainer.errors import ConfigError, DataError, TrainerError

HpsearchError = TrainerError
# The exit status of a process that printed a user's error in one line: `hpsearch` itself, a local
# worker process (search.launch.local), a Kubernetes pod whose Job then fails at once
USER_ERROR_EXIT = 2

__all__ = [
    "USER_ERROR_EXIT",
    "error_chain",
    "ConfigError",
    "DataError",
    "HpsearchError",
    "LaunchError",
    "NoFinishedTrial",
    "SearchStopped",
    "ServeError",
    "StorageDamaged",
    "StorageError",
    "StorageMissing",
    "StudyFileError",
    "StudyMismatchError",
    "StudyNotFound",
    "WorkerFailed",
]


class StudyFileError(ConfigError):
    """A study file is missing, malformed or holds a bad setting; the message names file and key."""


class StorageError(HpsearchError):
    """The storage URL is malformed or the database cannot be reached."""


class WaitStopped(StorageError):
    """A stop was asked (a signal) before anything was done: while the storage was waited for, or
    as the worker started."""


class StorageMissing(StorageError):
    """No storage is there yet: no SQLite file, or a database without Optuna's tables; only
    `hpsearch run` creates one."""


class StorageDamaged(HpsearchError):
    """A SQLite file fails its integrity check; the message names the file and how to recover."""


class StudyMismatchError(HpsearchError):
    """An existing study differs from the study file or from this worker's data."""


class StudyNotFound(HpsearchError):
    """No study of that name is in the storage."""


class NoFinishedTrial(HpsearchError):
    """The study has no complete trial, so there is nothing to export."""


class LaunchError(HpsearchError):
    """The workers, GPUs or workers per GPU asked for do not fit this machine."""


class ServeError(HpsearchError):
    """The dashboard or the gRPC proxy cannot listen where it was told: a port in use, say."""


class WorkerFailed(HpsearchError):
    """A local worker process stopped on an error the user can act on (a full disk, a damaged
    storage), which it printed in one line."""


class SearchStopped(KeyboardInterrupt):
    """A search stopped at a clean point by Ctrl-C or SIGTERM, each trial in flight checkpointed
    and queued to resume. Raised by `search.run_study` once the stop is done, a KeyboardInterrupt,
    so that a notebook cell or a script stops there too rather than go on with its next line (an
    export, a retrain) on a search cut short; `study` is the study, which a run again resumes.
    `hpsearch run` ends with status 0, the stop being what its user asked for."""

    def __init__(self, study: Any) -> None:
        super().__init__(
            f"search of study {study.study_name!r} stopped: each trial in flight is queued to "
            "resume, which running it again does"
        )
        self.study = study


def error_chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and every error behind it, each once, outermost first: the driver's own error that
    a SQLAlchemy error wraps (its `.orig`) and each link's cause or context (Optuna wraps
    SQLAlchemy's errors, SQLAlchemy reports a lost connection as the next statement's error)."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        driver_error = getattr(link, "orig", None)
        if isinstance(driver_error, BaseException) and id(driver_error) not in seen:
            seen.add(id(driver_error))
            yield driver_error
        link = link.__cause__ or link.__context__
