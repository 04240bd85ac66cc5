"""Create, join or find a study: sampler and pruner from the study file, queued points, and the
checks that keep one study consistent (same space, same data) however many workers join it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import optuna

from search.attrs import DATA_FINGERPRINT, DATA_SOURCE, QUEUED_AS, SPACE
from search.errors import StudyMismatchError, StudyNotFound
from search.study.samplers import build_pruner, build_sampler
from search.studyfile import StudyConfig


def find_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """The study called `name`; a missing one is an error that lists those present."""
    names = optuna.get_all_study_names(storage)
    if name not in names:
        raise StudyNotFound(
            f"no study named {name!r} in this storage; it holds: "
            f"{', '.join(map(repr, names)) or 'none'}"
        )
    return optuna.load_study(study_name=name, storage=storage)


def worker_seed(study_seed: int, worker_index: int) -> int:
    """Worker 0 uses the study's seed (one worker reproduces); others get distinct derived seeds."""
    if worker_index == 0:
        return study_seed
    return int(np.random.SeedSequence([study_seed, worker_index]).generate_state(1)[0])


def space_description(config: StudyConfig) -> dict[str, Any]:
    """What makes trials of one study comparable: space, fixed training settings and points."""
    fixed = config.train.to_dict()
    fixed.pop("seed")  # per trial: the study's seed plus the trial's number
    space = dataclasses.asdict(config.space) if config.space is not None else None
    return json.loads(json.dumps({"space": space, "train": fixed, "points": list(config.points)}))


def open_study(
    config: StudyConfig,
    storage: optuna.storages.BaseStorage,
    fingerprint: dict[str, Any],
    *,
    worker_index: int = 0,
    create: bool = True,
) -> optuna.Study:
    """Create the study (queueing its points) or load it after checking it matches."""
    name = config.study.name
    exists = name in optuna.get_all_study_names(storage)
    if not exists and not create:
        raise StudyMismatchError(
            f"study {name!r} does not exist in this storage; "
            f"start it with `hpsearch run {config.path}` first"
        )
    sampler = build_sampler(config.sampler, worker_seed(config.study.seed, worker_index))
    pruner = build_pruner(config.pruner, config.train.epochs)
    if exists:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        check_matches(study, config, fingerprint)
        return study
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction="maximize",
        load_if_exists=True,
    )
    study.set_user_attr(SPACE, space_description(config))
    study.set_user_attr(DATA_FINGERPRINT, fingerprint)
    study.set_user_attr(DATA_SOURCE, config.data.source)
    _enqueue(study, config)
    return study


def _enqueue(study: optuna.Study, config: StudyConfig) -> None:
    for label, points in (("warm_start", config.warm_start), ("points", config.points)):
        for index, point in enumerate(points):
            params = {key: value for key, value in point.items() if value is not None}
            study.enqueue_trial(
                params, user_attrs={QUEUED_AS: f"{label}[{index}]"}, skip_if_exists=True
            )


def check_matches(study: optuna.Study, config: StudyConfig, fingerprint: dict[str, Any]) -> None:
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise StudyMismatchError(
            f"study {study.study_name!r} exists and minimizes; ours maximize val top-1: "
            "use another study name"
        )
    stored_space = study.user_attrs.get(SPACE)
    if stored_space is not None and stored_space != space_description(config):
        raise StudyMismatchError(
            f"study {study.study_name!r} exists with another space or training settings "
            f"({_differences(stored_space, space_description(config))}); "
            "a study's space is fixed when it is created: give the study a new name"
        )
    stored_data = study.user_attrs.get(DATA_FINGERPRINT)
    if stored_data is not None and stored_data != fingerprint:
        raise StudyMismatchError(
            f"this worker's data differs from study {study.study_name!r}'s "
            f"({_differences(stored_data, fingerprint)}): point --data at the same "
            "images with the same image size"
        )


def _differences(stored: dict[str, Any], ours: dict[str, Any]) -> str:
    keys = sorted(set(stored) | set(ours))
    return "; ".join(
        f"{key}: {_short(stored.get(key))} in the study, {_short(ours.get(key))} here"
        for key in keys
        if stored.get(key) != ours.get(key)
    )


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
