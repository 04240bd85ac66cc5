"""The one path from a study file, or a stored study's name, to a worker's first trial.

Per process, whatever starts it (`hpsearch run`, `worker`, `slurm`, a notebook): the storage is
opened once, the study file's settings are checked once, the study is loaded once (through the
worker's cache of finished trials), and `hpsearch run` hands what it built to its local worker.
The order writes nothing until everything that can be checked has been: the storage's URL and
server first (a second), then the study file against a study that exists, then whether the storage
takes our writes (all before the data, which takes minutes to decode on a first run), then the
data against the study's fingerprint; only then is a new storage or study created.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna

from search import locations
from search.errors import StorageMissing
from search.run.options import WorkerOptions
from search.run.request import Request, StoredStudy, requested_name
from search.run.study_data import fingerprint, load_study_data
from search.study.opening import (
    check_settings,
    created_or_checked,
    load_existing,
    not_started,
    set_budget,
    with_sampler,
)
from search.study.recorded import budget, created_with, find_study, missing_study
from search.study.storage import check_reachable, open_storage
from search.study.writable import check_may_create, check_writable
from search.studyfile import StudyConfig
from trainer.data import ImageData
from trainer.naming import flag_naming, given
from trainer.outputs import check_output_folder

logger = logging.getLogger("hpsearch.worker")


@dataclass(frozen=True)
class Joined:
    """A study a worker can run trials of: its configuration, storage, study and data, and the
    checkpoint folder its trials' files go under (the flag's, else the study file's, else the
    user cache: checked once, here)."""

    config: StudyConfig
    storage: optuna.storages.BaseStorage
    study: optuna.Study
    data: ImageData
    checkpoint_root: Path


def join(
    request: Request,
    options: WorkerOptions,
    *,
    create: bool = False,
    trials: int | None = None,
    data: ImageData | None = None,
    before_writing: Callable[[StudyConfig], object] | None = None,
    stop: threading.Event | None = None,
) -> Joined:
    """Open the storage, find or (with `create`) create the study, check it, load the data.

    `trials` (the `--trials` flag) sets the budget of a study that exists; a new one takes its
    budget from the study file. `data`, already loaded, is used as it is (after its check).
    `before_writing` sees the configuration, once known, before anything is written: the checks
    of a caller that must refuse before a storage or study is made (`hpsearch slurm`'s). Setting
    `stop` ends a wait for the storage (WaitStopped).
    """
    check_reachable(options.storage_url, wait_seconds=options.wait_for_storage, stop=stop)
    # A named study must exist; a study file may make a new one, and a new storage too
    may_be_new = create and isinstance(request, StudyConfig)
    storage = _open(options, may_be_new=may_be_new, stop=stop)
    name = requested_name(request)
    study = load_existing(storage, name) if storage is not None else None
    if study is None and not may_be_new:
        assert storage is not None  # opened, or _open raised
        raise _missing(request, storage)
    config = _configuration(request, study, trials)
    checkpoints = locations.checkpoint_root(options.checkpoint_dir, config.checkpoint.dir)
    check_output_folder(checkpoints, "checkpoint folder")  # not met after a trial's first epoch
    if before_writing is not None:
        before_writing(config)
    # A storage that takes no writes from us is named before the data is decoded, not at the
    # first write (Optuna's "invalid data in the commit")
    if storage is not None:
        check_writable(storage, options.storage_url)
    else:
        check_may_create(options.storage_url)
    if data is None:
        data = load_study_data(config, options.cache_dir, progress=options.progress)
    data_fingerprint = fingerprint(config, data)
    storage = storage or open_storage(options.storage_url, create=True)  # a new one, only now
    new = study is None
    study = created_or_checked(config, storage, study, data_fingerprint)
    spent = 0  # by a study this process just made
    if trials is not None:
        spent = set_budget(study, trials)
    elif create and isinstance(request, StudyConfig):
        _say_if_budget_differs(request, study)
    # Said once, by whoever starts the search or sets its budget, of the budget stored: not on
    # every resume, nor by a run that then finds nothing left to run (a --trials below the
    # trials spent draws none)
    if create and (new or trials is not None):
        stored = budget(study, config.study.trials)
        if spent < stored:
            for idle in filter(None, (config.idle_sampler(stored), config.idle_pruner(stored))):
                logger.warning(idle)
    return Joined(config, storage, with_sampler(study, config), data, checkpoints)


def _say_if_budget_differs(config: StudyConfig, study: optuna.Study) -> None:
    """A study file's `trials` edited after its study was created: the stored budget holds (every
    worker reads it, whatever its copy of the file says), which a run that then finds nothing
    left to do would not explain."""
    stored, filed = budget(study, config.study.trials), config.study.trials
    if stored != filed:
        # Whichever command joined: `hpsearch run ...` advised from `slurm` ran it on the login node
        commands = "" if flag_naming() is None else " (to hpsearch run, slurm or kubernetes)"
        logger.warning(
            f"study {config.study.name!r} keeps its trial budget of {stored}, not the study "
            f"file's trials = {filed}: give {given('trials', filed)}{commands} to set it"
        )


def configuration(request: Request, options: WorkerOptions) -> StudyConfig:
    """The configuration a request names, without joining the study (a dry run): a study file's
    as it is, a stored study's as it was created."""
    if isinstance(request, StudyConfig):
        return request
    storage = open_storage(options.storage_url, create=False, wait_seconds=options.wait_for_storage)
    return created_with(find_study(storage, request.name), data=request.data)


def _open(
    options: WorkerOptions, *, may_be_new: bool, stop: threading.Event | None = None
) -> optuna.storages.BaseStorage | None:
    """The storage; None when it does not exist yet and this command may create it, once the data
    is known to be good."""
    try:
        return open_storage(
            options.storage_url, create=False, wait_seconds=options.wait_for_storage, stop=stop
        )
    except StorageMissing:  # no SQLite file yet, or no Optuna tables in the database
        if not may_be_new:
            raise
        return None


def _missing(request: Request, storage: optuna.storages.BaseStorage) -> Exception:
    if isinstance(request, StoredStudy):
        return missing_study(storage, request.name)
    return not_started(request, storage)


def _configuration(request: Request, study: optuna.Study | None, trials: int | None) -> StudyConfig:
    """The study file's configuration, checked against the study if it exists; or the one the
    named study was created with."""
    if isinstance(request, StoredStudy):
        assert study is not None  # join refused a missing one
        return created_with(study, data=request.data).with_overrides(trials=trials)
    if study is not None:
        check_settings(study, request)
    return request
