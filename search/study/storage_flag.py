"""A storage as a command line to copy names it: `--storage URL` where the command needs it."""

from __future__ import annotations

import os
import shlex

import optuna

from search.locations import DEFAULT_STORAGE, STORAGE_ENV
from search.study.optuna_compat import database_behind, storage_of
from search.url_secrets import masked


def storage_flag(url: str | None) -> str:
    """` --storage URL` for a command line to copy that must reach `url`: none where the same
    command without it finds it there ($HPSEARCH_STORAGE names it, or it is the default: a
    password stays out of the line, and the line works); else the URL quoted for the shell (a
    query's `&`), its password, if any, said to be hidden."""
    from_env = os.environ.get(STORAGE_ENV)
    if url is None or url == (from_env or DEFAULT_STORAGE):
        return ""
    shown = masked(url)
    hidden = " (your URL, its password hidden)" if shown != url else ""
    return f" --storage {shlex.quote(shown)}{hidden}"


def study_storage_flag(study: optuna.Study) -> str:
    """`storage_flag` for the storage `study` was opened from (the URL ours keep; none for a
    storage that keeps none)."""
    return storage_flag(getattr(database_behind(storage_of(study)), "url", None))
