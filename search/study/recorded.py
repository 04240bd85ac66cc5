"""What a study recorded about itself when it was created, read back: one reader per fact.

A study's user attributes are written by hpsearch (search.study.opening) but read back from a
database that other clients may write too, so every reader checks the shape of what it finds:
a value of another shape is treated as absent, never used to name a folder or train.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import optuna
from optuna.trial import TrialState

from search import attrs
from search.errors import StudyMismatchError, StudyNotFound
from search.studyfile import StudyConfig
from search.studyfile.document import from_document
from trainer.naming import named

STUDY_ID_PATTERN = re.compile(r"[0-9a-f]{32}")  # uuid4().hex; anything else is not ours


def find_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """The study called `name`; a missing one is an error that lists those present, and so is one
    hpsearch cannot read (`unreadable`)."""
    if name not in optuna.get_all_study_names(storage):
        raise missing_study(storage, name)
    study = optuna.load_study(study_name=name, storage=storage)
    reason = unreadable(study)
    if reason is not None:
        raise StudyMismatchError(f"{reason}: `hpsearch dashboard` shows it as Optuna made it")
    return study


def unreadable(study: optuna.Study) -> str | None:
    """Why hpsearch cannot read `study`, or None. Every study hpsearch makes maximizes one
    objective, val top-1; a study another tool made in the same storage may have several, or
    minimize, and its values are no accuracies to rank, plot or retrain from."""
    directions = study.directions
    if len(directions) > 1:
        return (
            f"study {study.study_name!r} has {len(directions)} objectives; hpsearch reads "
            "single-objective studies"
        )
    if directions[0] != optuna.study.StudyDirection.MAXIMIZE:
        return (
            f"study {study.study_name!r} minimizes its objective; hpsearch reads studies that "
            "maximize val top-1"
        )
    # Another tool's accuracy in percent, or a score of its own: drawn as hundreds of percent
    # off every axis, and an infinite value ranked best
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    outside = next((trial for trial in complete if not _is_a_fraction(trial.value)), None)
    if outside is not None:
        return (
            f"study {study.study_name!r} has a value outside 0 to 1 (trial {outside.number}: "
            f"{outside.value!r}); hpsearch reads a study's values as val top-1, a fraction"
        )
    return None


def _is_a_fraction(value: object) -> bool:
    return isinstance(value, (int, float)) and 0.0 <= value <= 1.0  # NaN is not


def missing_study(storage: optuna.storages.BaseStorage, name: str) -> StudyNotFound:
    """The error for a study that is not there, naming the storage (an environment variable or
    the default may have chosen it) and listing the studies it holds."""
    names = optuna.get_all_study_names(storage)
    return StudyNotFound(
        f"no study named {name!r} in {storage_shown(storage)}; it holds: "
        f"{', '.join(map(repr, names)) or 'none'}{_spelled_otherwise(name, names)}"
    )


def _spelled_otherwise(name: str, names: list[str]) -> str:
    """A stored name that prints as `name` but encodes its accents otherwise (é as one character,
    or as e and a combining accent, as macOS writes file names): the two lines alone would read
    "no study named 'café'; it holds: 'café'"."""
    nfc = unicodedata.normalize("NFC", name)
    same = next((other for other in names if unicodedata.normalize("NFC", other) == nfc), None)
    if same is None:
        return ""
    return (
        f"; {ascii(same)} prints the same, its accents encoded otherwise than {ascii(name)}'s: "
        "give the name as the study stores it (copy it from `hpsearch status`)"
    )


def storage_shown(storage: optuna.storages.BaseStorage) -> str:
    """The storage as a line names it (`storage sqlite:///x.db`, password masked, or `gRPC proxy
    HOST:PORT`): ours name themselves; another's is "this storage"."""
    return getattr(storage, "shown", "this storage")


def study_id(study: optuna.Study) -> str | None:
    """The study's identity, checked: a value of any other shape (written by another client of the
    database) is no identity, and is never used to name a folder."""
    value = study.user_attrs.get(attrs.STUDY_ID)
    return value if isinstance(value, str) and STUDY_ID_PATTERN.fullmatch(value) else None


def budget(study: optuna.Study, default: int) -> int:
    """The study's trial budget, as every worker reads it; `default` for an older study."""
    value = study.user_attrs.get(attrs.BUDGET)
    return value if isinstance(value, int) and value >= 1 else default


def config_document(study: optuna.Study) -> dict[str, Any] | None:
    """The whole resolved study file the study was created with, as a document; None for a study
    of an older hpsearch or of another tool."""
    document = study.user_attrs.get(attrs.STUDY_CONFIG)
    return document if isinstance(document, dict) else None


def created_with(study: optuna.Study, *, data: str | None = None) -> StudyConfig:
    """The configuration the study was created with, its live budget and this machine's data path
    (`data`, else the creator's) applied: what a worker joining with no study file runs."""
    reason = unreadable(study)
    if reason is not None:
        raise StudyMismatchError(
            f"{reason}; {named('study')} joins only studies hpsearch created, which recorded their "
            "settings"
        )
    document = config_document(study)
    if document is None:
        raise StudyMismatchError(
            f"study {study.study_name!r} was created before studies recorded their settings; "
            "join it with its study file: `hpsearch worker STUDY.toml`"
        )
    config = from_document(document, f"study {study.study_name!r}")
    return config.with_overrides(trials=budget(study, config.study.trials), data=data)


def checkpoint_dir(study: optuna.Study) -> str | None:
    """The [checkpoint] dir the study was created with, where its weights are unless told
    otherwise; only ever a folder to look in, and only a string is taken."""
    document = config_document(study) or {}
    table = document.get("checkpoint")
    folder = table.get("dir") if isinstance(table, dict) else None
    return folder if isinstance(folder, str) else None


def data_fingerprint(study: optuna.Study) -> dict[str, Any] | None:
    """Classes, image counts and size of the data the study was created on; every worker's must
    match."""
    fingerprint = study.user_attrs.get(attrs.DATA_FINGERPRINT)
    return fingerprint if isinstance(fingerprint, dict) else None


def data_source(study: optuna.Study) -> str | None:
    """The data as the study's creator named it (a folder, an archive, imagenette-160)."""
    source = study.user_attrs.get(attrs.DATA_SOURCE)
    return source if isinstance(source, str) else None
