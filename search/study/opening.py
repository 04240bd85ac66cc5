"""Create a study, or load one that exists, and check it against the study file and the data.

A study records, when it is created, everything a worker needs to join it: a unique identity
(which keys its files, whatever its name or storage), its whole resolved configuration, its
budget and its data's fingerprint (read back by search.study.recorded). A worker joins from the
study's name alone, or with a study file that must agree with what the study recorded; every
worker reads the budget from the study. The steps are apart so that a worker checks the settings
before it decodes the data and the data after (search.run.joining); `open_study` takes them in
one go for a caller that holds the data already.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from search import attrs
from search.errors import StudyMismatchError, StudyNotFound
from search.study.optuna_compat import cached_storage, study_id_of
from search.study.recorded import (
    config_document,
    data_fingerprint,
    storage_shown,
    study_id,
    unreadable,
)
from search.study.samplers import build_pruner, build_sampler
from search.study.storage_flag import study_storage_flag
from search.studyfile import StudyConfig
from search.studyfile.document import differences, to_document
from trainer.model_names import DEFAULT_MODEL
from trainer.naming import given, named
from trainer.source_names import IMAGENETTE

logger = logging.getLogger("hpsearch.worker")

# How long a worker that found a study being created waits for its creator to record its settings
CREATION_WAIT_SECONDS = 30.0
# A creator names the study's metric first of all; a study without it this long after we found it
# was made by another tool, and is not waited for
CREATION_GRACE_SECONDS = 2.0
# The namespace of the identities of studies whose creation another process finished
FINISHED_LATE = uuid.UUID("6f3c1f0e-4d7b-4a8e-9f51-2b7d8c0e6a13")


def set_budget(study: optuna.Study, trials: int) -> int:
    """`run --trials N` on an existing study: every worker sees the new budget before its next
    trial. A budget below the trials already spent starts nothing, which a user who read
    `--trials 3` as "3 more" would otherwise learn only from a run that ends at once. Returns the
    trials spent."""
    study.set_user_attr(attrs.BUDGET, trials)
    spent = attrs.budget_spent(study.get_trials(deepcopy=False))
    if trials < spent:
        logger.warning(
            f"{given('trials', trials)} sets the whole budget of study {study.study_name!r}, "
            f"not trials to add: it has spent {spent} trials already, so no new trial starts; "
            f"for {trials} more, give {given('trials', spent + trials)}"
        )
    return spent


def open_study(
    config: StudyConfig,
    storage: optuna.storages.BaseStorage,
    fingerprint: dict[str, Any],
    *,
    create: bool = True,
) -> optuna.Study:
    """Create the study (queueing its points) or load it after checking it matches."""
    study = load_existing(storage, config.study.name)
    if study is None and not create:
        raise not_started(config, storage)
    if study is not None:
        check_settings(study, config)
    study = created_or_checked(config, storage, study, fingerprint)
    return with_sampler(study, config)


def created_or_checked(
    config: StudyConfig,
    storage: optuna.storages.BaseStorage,
    study: optuna.Study | None,
    fingerprint: dict[str, Any],
) -> optuna.Study:
    """Once the data is known: the study created (or, if another process created it first, that
    one checked), or the data of the study that exists checked against its fingerprint."""
    if study is None:
        created = create_study(config, storage, fingerprint)
        if created is not None:
            return created
        study = joined_late(storage, config)
    elif study_id(study) is None and config_document(study) is not None:
        finish_creation(study, config, fingerprint)
    check_data(study, fingerprint)
    return study


def finish_creation(study: optuna.Study, config: StudyConfig, fingerprint: dict[str, Any]) -> None:
    """Record what a study whose creator died while recording it lacks (load_existing waited for
    it first): its budget, data, the points not queued yet, and last its identity. The identity
    is made from the study's number in the storage, so every process that finishes the study at
    once records the same one, and none keys trial folders by another's."""
    identity = uuid.uuid5(FINISHED_LATE, f"{study.study_name}/{study_id_of(study)}")
    _record_after_settings(study, with_data_from_anywhere(config), fingerprint, identity.hex)


def _record_after_settings(
    study: optuna.Study, config: StudyConfig, fingerprint: dict[str, Any], identity: str
) -> None:
    """What a study records after its settings, by its creator or by whoever finishes its creation:
    its budget and data (those not recorded yet), its points queued (each once: those queued
    before are skipped), and last its identity: a study with one has all its settings recorded."""
    recorded = study.user_attrs
    for key, value in (
        (attrs.BUDGET, config.study.trials),
        (attrs.DATA_FINGERPRINT, fingerprint),
        (attrs.DATA_SOURCE, config.data.source),
    ):
        if key not in recorded:
            study.set_user_attr(key, value)
    _enqueue(study, config)
    study.set_user_attr(attrs.STUDY_ID, identity)


def not_started(config: StudyConfig, storage: optuna.storages.BaseStorage) -> StudyNotFound:
    """The error for a study file's study that a command which only joins does not find: the
    storage named (an environment variable or the default may have chosen it)."""
    return StudyNotFound(
        f"study {config.study.name!r} does not exist in {storage_shown(storage)}; start it there "
        f"first: `hpsearch run {config.path}` with the same {named('storage')}"
    )


def load_existing(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study | None:
    """The study called `name`, or None. Loaded through a worker's cache (every finished trial
    read once, and kept for the worker's life), once its creator has recorded its settings."""
    if name not in optuna.get_all_study_names(storage):
        _refuse_a_name_taken_as_another(storage, name)
        return None
    study = optuna.load_study(study_name=name, storage=cached_storage(storage))
    _wait_until_created(study)
    return study


def _refuse_a_name_taken_as_another(storage: optuna.storages.BaseStorage, name: str) -> None:
    """MySQL and MariaDB compare names in their collation, which mostly ignores case, accents
    and trailing spaces: a new study `resnet` beside `ResNet` is refused as taken, and an hpsearch
    that looked for the name as written took it for free, decoded the data, then said the study it
    could not create "disappeared". Asked of the database itself, before anything is written."""
    try:
        taken = storage.get_study_name_from_id(storage.get_study_id_from_name(name))
    except KeyError:  # no study by that name, in the database's own comparison either
        return
    if taken == name:  # created by another process a moment ago: its creation race, not ours
        return
    raise StudyMismatchError(
        f"study name {name!r} is taken in this storage by study {taken!r}, which its database "
        "does not tell apart from it (MySQL's and MariaDB's collations ignore case, most accents "
        f"and trailing spaces): give the study file another [study] name, or name it {taken!r}"
    )


def joined_late(storage: optuna.storages.BaseStorage, config: StudyConfig) -> optuna.Study:
    """The study another process created a moment before this one could, checked as any study
    that exists."""
    study = load_existing(storage, config.study.name)
    if study is None:  # created and deleted meanwhile: nothing sensible to join
        raise StudyNotFound(f"study {config.study.name!r} disappeared while it was created")
    check_settings(study, config)
    return study


def create_study(
    config: StudyConfig, storage: optuna.storages.BaseStorage, fingerprint: dict[str, Any]
) -> optuna.Study | None:
    """The new study with everything it records; None if another process created it first."""
    try:
        study = optuna.create_study(
            study_name=config.study.name, storage=cached_storage(storage), direction="maximize"
        )
    except optuna.exceptions.DuplicatedStudyError:
        return None
    recorded = with_data_from_anywhere(config)
    study.set_metric_names([attrs.METRIC])  # the dashboard and Optuna's plots say what they show
    study.set_user_attr(attrs.STUDY_CONFIG, to_document(recorded))
    _record_after_settings(study, recorded, fingerprint, uuid.uuid4().hex)
    return study


def with_data_from_anywhere(config: StudyConfig) -> StudyConfig:
    """The configuration a study records, its data path made absolute: a path relative to the
    folder its creator ran in names nothing to a worker that joins by the study's name from
    another folder (a SLURM job's, a second terminal's), which was told the folder does not exist.
    An Imagenette name, a URL and a path that names nothing here are kept as typed."""
    source = config.data.source
    path = Path(source).expanduser()
    if source in IMAGENETTE or "://" in source or path.is_absolute() or not path.exists():
        return config
    data = dataclasses.replace(config.data, source=str(path.absolute()))
    return dataclasses.replace(config, data=data)


def _wait_until_created(study: optuna.Study) -> None:
    """Another `run` may have created the study a moment ago and still be recording its settings;
    a study of an older hpsearch (with a recorded space) or of another tool is not waited for."""
    found = time.monotonic()
    while (waited := time.monotonic() - found) < CREATION_WAIT_SECONDS:
        user_attrs = study.user_attrs
        if attrs.STUDY_ID in user_attrs or attrs.SPACE in user_attrs:
            return
        if attrs.STUDY_CONFIG not in user_attrs and study.get_trials(deepcopy=False):
            return  # trials but no settings: made by another tool, not being created
        if study.metric_names is None and waited > CREATION_GRACE_SECONDS:
            return  # not even named by a creator of ours
        time.sleep(0.5)


def with_sampler(study: optuna.Study, config: StudyConfig) -> optuna.Study:
    """The study with the sampler and pruner of the study file, the sampler seeded with the study's
    seed until this process takes its first trial (`settle_sampler_seed`). Set on the study
    already loaded, whose cache now holds every finished trial: loading it again would read them
    all again (at thousands of trials, seconds per worker)."""
    study.sampler = build_sampler(config.sampler, config.study.seed)
    study.pruner = build_pruner(config.pruner, config.train.epochs)
    return study


def settle_sampler_seed(study: optuna.Study, config: StudyConfig, first: optuna.Trial) -> None:
    """Given the first trial this process takes, before anything is drawn for it: the sampler is
    seeded by the study's seed and that trial's number. The storage hands each trial number to
    one process alone, so no two processes share a seed, however many were started at once and
    without a word between them; a seed made from what a process knows before its first trial (a
    worker index, the trials started) can be the same in two processes started together, which
    then suggest the same parameters trial for trial. The process that takes trial 0 keeps the
    study's seed itself, so one worker on a fresh study reproduces; a resumed study, whose next
    trial number is new, never replays the suggestions it already tried.

    A new sampler rather than a reseeded one: `reseed_rng` takes no seed, and leaves CMA-ES's own
    generator on the old one. The sampler replaced has seen only `before_trial`, from which none
    of ours keeps anything.
    """
    if first.number != 0:
        seed = np.random.SeedSequence([config.study.seed, first.number]).generate_state(1)[0]
        study.sampler = build_sampler(config.sampler, int(seed))


def _enqueue(study: optuna.Study, config: StudyConfig) -> None:
    for label, points in (("warm_start", config.warm_start), ("points", config.points)):
        for index, point in enumerate(points):
            params = {key: value for key, value in point.items() if value is not None}
            study.enqueue_trial(
                params, user_attrs={attrs.QUEUED_AS: f"{label}[{index}]"}, skip_if_exists=True
            )


def check_data(study: optuna.Study, fingerprint: dict[str, Any]) -> None:
    """This worker's data must be the study's: the same images, image size, cap and split."""
    stored_data = data_fingerprint(study)
    if stored_data is not None and stored_data != fingerprint:
        raise StudyMismatchError(
            f"this worker's data differs from that of study {study.study_name!r} "
            f"({_fingerprint_differences(stored_data, fingerprint)}): point {named('data')} (or "
            "the study file's data.source) at the same images with the same image size; to "
            "search these images, give the study file another [study] name"
        )


def check_settings(study: optuna.Study, config: StudyConfig) -> None:
    """The study file (with its flags) must describe the study as it was created; checked before
    the data is decoded, which takes minutes on a first run."""
    name = study.study_name
    reason = unreadable(study)
    if reason is not None:
        raise StudyMismatchError(f"{reason}: give the study file another [study] name")
    stored = config_document(study)
    if stored is not None:
        changed = differences(
            stored, to_document(config), str(config.path), dict(config.overridden)
        )
    else:  # a study of an older hpsearch recorded only its space and training settings
        stored_space = study.user_attrs.get(attrs.SPACE)
        changed = (
            []
            if stored_space is None or stored_space == space_description(config)
            else [f"space or [train]: {_short(stored_space)} in the study"]
        )
    if changed:
        # Where the study is (--storage, or the study file's): a command without the file would
        # look in $HPSEARCH_STORAGE or the default SQLite file
        storage = study_storage_flag(study)
        raise StudyMismatchError(
            f"study {name!r} was created with other settings than {config.path}:\n  "
            + "\n  ".join(changed)
            + f"\nto join or resume it as it was created, leave the study file out: "
            f"`hpsearch worker --study {name}{storage}` or `hpsearch run --study {name}{storage}`"
            + "; to search with your settings, give the file another [study] name"
        )


def space_description(config: StudyConfig) -> dict[str, Any]:
    """What a study of an older hpsearch recorded as its space (attrs.SPACE), to compare with."""
    fixed = config.train.to_dict()
    fixed.pop("seed")  # per trial: the study's seed plus the trial's number
    space = dataclasses.asdict(config.space) if config.space is not None else None
    # Those studies trained ResNet-18 and recorded no model
    if space is not None and space["models"] is None:
        del space["models"]
    if fixed["model"] == DEFAULT_MODEL:
        del fixed["model"]
    return json.loads(json.dumps({"space": space, "train": fixed, "points": list(config.points)}))


def _fingerprint_differences(stored: dict[str, Any], ours: dict[str, Any]) -> str:
    keys = sorted(set(stored) | set(ours))
    return "; ".join(
        f"{key}: {_short(stored.get(key))} in the study, {_short(ours.get(key))} here"
        for key in keys
        if stored.get(key) != ours.get(key)
    )


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
