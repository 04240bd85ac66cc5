"""Running a search from Python, as `hpsearch run` does: the same options, by keyword. The commands
`run`, `worker` and `slurm` (which checks what its workers will see) read their flags into the same
checks (`checked_setup`), so a notebook and the command line refuse and decide alike."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import optuna

from search import locations
from search.errors import ConfigError
from search.launch.forking import check_local_workers, start_worker_server, will_fork_workers
from search.run.log import LOG_FORMATS, log_handlers_restored
from search.run.options import WorkerOptions
from search.run.request import Request, StoredStudy
from search.study.storage import check_reachable, check_storage_url
from search.studyfile import MAX_TRIALS_PER_WORKER, StudyConfig, load_study_config
from trainer.naming import given, named
from trainer.source_names import check_data_source

# The settings that place local workers on GPUs, which only these devices use (search.launch.local)
GPU_SETTINGS = ("gpus", "workers_per_gpu")
GPU_DEVICES = ("auto", "cuda")


def run_study(
    study_file: str | Path | StudyConfig | None = None,
    *,
    study: str | None = None,
    storage: str | None = None,
    data: str | Path | None = None,
    trials: int | None = None,
    epochs: int | None = None,
    image_size: int | None = None,
    workers: int | None = None,
    gpus: list[int] | None = None,
    workers_per_gpu: int | None = None,
    device: str = "auto",
    compile: bool = False,
    cache_dir: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    trials_per_worker: int | None = None,
    progress: bool = True,
    log_format: str | None = None,
    wait_for_storage: float = 0,
    create_only: bool = False,
) -> optuna.Study:
    """Create or resume a study and run local workers on it until its budget is met, as
    `hpsearch run`; returns the Optuna study (`search.status(study.study_name)` says where it
    stands).

    The study comes from a study file (a path, or a `StudyConfig` already loaded), or, with
    `study=NAME` instead, from the storage, run as it was created. Every other keyword is the flag
    of the same name: `trials` sets the study's budget (over all workers), `epochs` and
    `image_size` change the study file's; `storage` (default: $HPSEARCH_STORAGE, the study file's,
    else `sqlite:///hpsearch.db`); `workers`, `gpus` and `workers_per_gpu` say how many local
    worker processes run, and where (default: one per GPU, else one on the CPU, in this process);
    `progress` shows progress bars, `log_format` ("text" or "json") a line per event instead;
    `create_only` creates (or checks) the study and sets its budget without training.

    Stopped by a signal (Ctrl-C, a notebook's Interrupt, SIGTERM), it stops at a clean point,
    each trial in flight queued to resume, then raises `search.errors.SearchStopped` (a
    KeyboardInterrupt, its `study` the study), so that its caller stops too.
    """
    _refuse_settings_that_do_nothing(
        create_only,
        device,
        workers=workers,
        gpus=gpus,
        workers_per_gpu=workers_per_gpu,
        compile=compile,
        trials_per_worker=trials_per_worker,
    )
    per_gpu = 1 if workers_per_gpu is None else workers_per_gpu
    check_local_workers(workers, gpus, per_gpu)
    request, options = checked_setup(
        study_file,
        study=study,
        storage=storage,
        data=data,
        trials=trials,
        epochs=epochs,
        image_size=image_size,
        device=device,
        compile=compile,
        cache_dir=cache_dir,
        checkpoint_dir=checkpoint_dir,
        trials_per_worker=trials_per_worker,
        progress=progress,
        log_format=log_format,
        wait_for_storage=wait_for_storage,
    )
    if not wait_for_storage:  # else join waits for the server; here a wrong port or password
        check_reachable(options.storage_url)  # is told before torch loads (seconds)
    if not create_only and will_fork_workers(workers, device):
        # its import of torch then runs beside this process's own, not after it (seconds sooner)
        start_worker_server()
    check_device(device)
    # Imported once the request is checked: what trains loads torch (seconds), and a typo in a
    # study file is refused before that
    from search.launch.local import launch
    from search.run.joining import join

    # hpsearch's own use of Optuna's experimental API (metric names) is no news to a notebook,
    # and the log lines of this search's `log_format` end with it
    with warnings.catch_warnings(), log_handlers_restored():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        if create_only:
            return join(request, options, create=True, trials=trials).study
        return launch(
            request,
            options,
            workers=workers,
            gpus=gpus,
            workers_per_gpu=per_gpu,
            trials=trials,
        )


def _refuse_settings_that_do_nothing(create_only: bool, device: str, **settings: object) -> None:
    """A setting of the workers that cannot apply is refused, not dropped: whoever gave it expects
    it to act. `settings`: the workers' keywords, None or False where not given."""
    chosen = [keyword for keyword, value in settings.items() if value not in (None, False)]
    if create_only and chosen:
        raise ConfigError(
            f"{named('create_only')} starts no worker, so {named(chosen[0])} would do nothing; "
            "leave one of them out"
        )
    on_gpus = [keyword for keyword in GPU_SETTINGS if settings.get(keyword) is not None]
    if on_gpus and device not in GPU_DEVICES:
        choices = " or ".join(given("device", choice) for choice in GPU_DEVICES)
        raise ConfigError(
            f"{named(on_gpus[0])} places workers on GPUs, which {given('device', device)} "
            f"does not use: leave {named(on_gpus[0])} out, or give {choices}"
        )


def checked_setup(
    study_file: str | Path | StudyConfig | None = None,
    *,
    study: str | None = None,
    storage: str | None = None,
    data: str | Path | None = None,
    trials: int | None = None,
    epochs: int | None = None,
    image_size: int | None = None,
    device: str = "auto",
    compile: bool = False,
    cache_dir: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    trials_per_worker: int | None = None,
    progress: bool = True,
    log_format: str | None = None,
    wait_for_storage: float = 0,
) -> tuple[Request, WorkerOptions]:
    """The study to run (its file's configuration with the overrides applied, or the stored
    study `study` names, read when joined) and how its workers run, checked before anything is
    written; all but the device, which loads torch (seconds, `check_device`): what needs no more
    than the standard library, Optuna and the study file is refused first."""
    if log_format not in (*LOG_FORMATS, None):
        raise ConfigError(
            f"{named('log_format')} must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}"
        )
    if trials_per_worker is not None and trials_per_worker < 1:
        raise ConfigError(
            f"{named('trials_per_worker')} must be at least 1, but got {trials_per_worker}"
        )
    if trials_per_worker is not None and trials_per_worker > MAX_TRIALS_PER_WORKER:
        raise ConfigError(
            f"{named('trials_per_worker')} must be at most {MAX_TRIALS_PER_WORKER}, but got "
            f"{trials_per_worker}"
        )
    if not math.isfinite(wait_for_storage) or wait_for_storage < 0:
        raise ConfigError(
            f"{named('wait_for_storage')} must be a finite number of seconds, at least 0, but "
            f"got {given('wait_for_storage', wait_for_storage)}"
        )
    request, url = _request(
        study_file, study, storage, data, trials=trials, epochs=epochs, image_size=image_size
    )
    check_storage_url(url)  # its syntax, driver and SQLite folder: read, not connected to
    source = request.data.source if isinstance(request, StudyConfig) else request.data
    if source is not None:  # else the creator's, known once the stored study is read
        check_data_source(source)  # a mistyped path; what the folder holds is read when joined
    return request, WorkerOptions(
        url,
        device,
        Path(cache_dir) if cache_dir is not None else None,
        progress=progress,
        log_format=log_format,
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir is not None else None,
        compile=compile,
        wait_for_storage=wait_for_storage,
        trials_per_worker=trials_per_worker,
    )


def check_device(device: str) -> None:
    """A missing GPU is an error before anything is written; it loads torch (seconds)."""
    from trainer.device import resolve_device

    resolve_device(device)


def _request(
    study_file: str | Path | StudyConfig | None,
    study: str | None,
    storage: str | None,
    data: str | Path | None,
    *,
    trials: int | None,
    epochs: int | None,
    image_size: int | None,
) -> tuple[Request, str]:
    """The study a run asks for, and the storage URL it is in."""
    if (study_file is None) == (study is None):
        raise ConfigError(
            "give a study file (to create a study, or check it against one that exists) or "
            f"{given('study', 'NAME')} (to join or resume one as it was created), not "
            + ("both" if study else "neither")
        )
    source = str(data) if data is not None else None
    if study_file is not None:
        config = (
            study_file if isinstance(study_file, StudyConfig) else load_study_config(study_file)
        )
        config = config.with_overrides(
            data=source, trials=trials, epochs=epochs, image_size=image_size
        )
        return config, locations.storage_url(storage, config.study.storage)
    assert study is not None  # one of the two, checked above
    _refuse_changes_to_a_stored_study({"epochs": epochs, "image_size": image_size})
    return StoredStudy(study, data=source), locations.storage_url(storage)


def _refuse_changes_to_a_stored_study(overrides: dict[str, int | None]) -> None:
    for keyword in ("epochs", "image_size"):
        if overrides.get(keyword) is not None:
            raise ConfigError(
                f"{named(keyword)} with {named('study')}: a study trains as it was created; "
                "to train otherwise, start a new study from a study file"
            )
