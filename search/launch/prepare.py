"""Before any worker starts, wherever it runs: the study created or resumed, in the one order
that writes nothing until everything that can be checked has been."""

from __future__ import annotations

import optuna

from search.errors import StorageError, StudyNotFound
from search.run.study_data import fingerprint, load_study_data
from search.run.worker import WorkerOptions, connect
from search.study.create import check_settings, find_study, open_study, set_budget
from search.study.storage import check_reachable, open_storage
from search.studyfile import StudyConfig
from trainer.data import ImageData


def create_or_resume(
    config: StudyConfig, options: WorkerOptions, *, trials: int | None = None
) -> tuple[optuna.Study, ImageData]:
    """The study, created with its data's fingerprint or checked against it, and the data.

    The storage's URL and server first, then the data, then the study: a bad URL or a server that
    is down fails in a second, and a folder that cannot be read leaves no database behind.
    `trials` (the `--trials` flag) sets the budget of a study that exists; a new one takes its
    budget from `config`.
    """
    check_reachable(options.storage_url, wait_seconds=options.wait_for_storage)
    storage = _existing_storage(options.storage_url)
    if storage is not None:  # a study file that differs is refused before the data is decoded
        _check_existing(storage, config)
    data = load_study_data(config, options.cache_dir, progress=options.progress)
    if storage is None:  # created only now, once the data is known to be good
        storage = connect(options, create=True)
    study = open_study(config, storage, fingerprint(config, data))
    if trials is not None:
        set_budget(study, trials)
    return study, data


def _existing_storage(url: str) -> optuna.storages.BaseStorage | None:
    """The storage, if it exists already; None otherwise, creating nothing."""
    try:
        return open_storage(url, create=False)
    except StorageError:  # no SQLite file yet, or no Optuna tables in the database
        return None


def _check_existing(storage: optuna.storages.BaseStorage, config: StudyConfig) -> None:
    try:
        study = find_study(storage, config.study.name)
    except StudyNotFound:
        return
    check_settings(study, config)
