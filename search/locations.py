"""Where things are: every setting with several sources is decided here, in one order.

    a command-line flag  >  an environment variable  >  the study file  >  a default

as optuna-dashboard's `_config.py` does for its settings. Nothing else in hpsearch reads these
environment variables or picks a default for these. The data has no environment variable: `--data`
overrides the study file's [data] source (`StudyConfig.with_overrides`), whose default is
DEFAULT_DATA, as is `train`'s.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

import platformdirs
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

STORAGE_ENV = "HPSEARCH_STORAGE"
CHECKPOINTS_ENV = "HPSEARCH_CHECKPOINTS"
ARTIFACTS_ENV = "HPSEARCH_ARTIFACTS"
DEFAULT_STORAGE = "sqlite:///hpsearch.db"  # the embedded default: one machine, no server
DEFAULT_DATA = "imagenette-160"
RUNS_FOLDER = Path(
    "runs"
)  # where `train` without --checkpoint-dir keeps its files, like most tools


def _first(*candidates: str | Path | None) -> str | Path | None:
    return next((candidate for candidate in candidates if candidate), None)


def storage_url(flag: str | None = None, study_file: str | None = None) -> str:
    """--storage, then $HPSEARCH_STORAGE, then the study file's `storage`, then ./hpsearch.db."""
    return str(_first(flag, os.environ.get(STORAGE_ENV), study_file, DEFAULT_STORAGE))


def checkpoint_root(flag: str | Path | None = None, study_file: str | None = None) -> Path:
    """The chosen checkpoint folder (chosen_checkpoint_root), else the user cache."""
    chosen = chosen_checkpoint_root(flag, study_file)
    return chosen or Path(platformdirs.user_cache_dir("hpsearch")) / "checkpoints"


def chosen_checkpoint_root(
    flag: str | Path | None = None, study_file: str | None = None
) -> Path | None:
    """--checkpoint-dir, then $HPSEARCH_CHECKPOINTS, then [checkpoint] dir: the folder someone chose
    on purpose, or None where only the default (local to this machine) is left."""
    chosen = _first(flag, os.environ.get(CHECKPOINTS_ENV), study_file)
    return Path(chosen) if chosen else None


def artifact_dir(url: str, flag: str | Path | None = None) -> Path:
    """--artifacts, then $HPSEARCH_ARTIFACTS, then `artifacts/` beside a SQLite file (or here)."""
    chosen = _first(flag, os.environ.get(ARTIFACTS_ENV))
    if chosen:
        return Path(chosen)
    try:
        database = sqlite_file(make_url(url))
    except ArgumentError:
        database = None
    return database.parent / "artifacts" if database else Path("artifacts")


def sqlite_file(parsed: sqlalchemy.URL) -> Path | None:
    """The file a SQLite URL names; None for other databases and in-memory SQLite. The one
    reading of it: the artifacts beside the file, the file checked for damage and `status`'s
    "does not exist" must name the same file."""
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    database = parsed.database
    if _uri_filename(parsed) and database.startswith("file:"):
        return _file_of_uri(database)
    return Path(database)


def _uri_filename(parsed: sqlalchemy.URL) -> bool:
    # ?uri=true, as the driver reads it (SQLAlchemy's asbool): the database is then SQLite's URI
    value = parsed.query.get("uri")
    text = value[-1] if isinstance(value, tuple) else value
    return str(text).strip().lower() in ("true", "yes", "on", "y", "t", "1")


def _file_of_uri(uri: str) -> Path:
    """The file of SQLite's URI filename `file:PATH` or `file://AUTHORITY/PATH` (its query is
    SQLAlchemy's by now): without this, `sqlite:///file:hpsearch.db?uri=true` was the file
    "file:hpsearch.db", missing to `status`, never checked for damage, and its artifacts went to
    a folder named `file:...`."""
    rest = uri.removeprefix("file:")
    if rest.startswith("//"):  # an authority (empty or localhost), then the absolute path
        rest = rest[2:]
        rest = rest[rest.index("/") :] if "/" in rest else "/"
    return Path(unquote(rest.split("#", 1)[0]))
