"""Where things are: each setting with several sources takes the flag, then the environment, then
the study file, then the default, and nothing else decides it."""

from __future__ import annotations

from pathlib import Path

import platformdirs

from search import locations
from search.locations import DEFAULT_STORAGE, storage_url


def test_the_flag_wins_then_the_environment_then_the_study_file_then_the_default(monkeypatch):
    monkeypatch.setenv("HPSEARCH_STORAGE", "sqlite:///env.db")
    assert storage_url("sqlite:///flag.db", "sqlite:///file.db") == "sqlite:///flag.db"
    assert storage_url(None, "sqlite:///file.db") == "sqlite:///env.db"
    monkeypatch.delenv("HPSEARCH_STORAGE")
    assert storage_url(None, "sqlite:///file.db") == "sqlite:///file.db"
    assert storage_url(None, None) == DEFAULT_STORAGE == "sqlite:///hpsearch.db"


def test_artifacts_default_beside_the_sqlite_file_unless_told(tmp_path, monkeypatch):
    monkeypatch.delenv("HPSEARCH_ARTIFACTS", raising=False)
    assert locations.artifact_dir(f"sqlite:///{tmp_path}/s.db") == tmp_path / "artifacts"
    assert locations.artifact_dir("postgresql://u@h/db") == Path("artifacts")
    monkeypatch.setenv("HPSEARCH_ARTIFACTS", str(tmp_path / "shared"))
    assert locations.artifact_dir(f"sqlite:///{tmp_path}/s.db") == tmp_path / "shared"
    assert locations.artifact_dir("sqlite:///s.db", tmp_path / "flag") == tmp_path / "flag"


def test_artifacts_go_beside_the_file_that_sqlites_uri_form_names(tmp_path, monkeypatch):
    # They went to a folder named `file:...` under the current one, apart from the study's file
    monkeypatch.delenv("HPSEARCH_ARTIFACTS", raising=False)
    for url in (
        f"sqlite:///file:{tmp_path}/s.db?uri=true",
        f"sqlite:///file://localhost{tmp_path}/s.db?uri=true&mode=rw",
        f"sqlite:///file:{str(tmp_path).replace('/', '%2F')}%2Fs.db?uri=1",
    ):
        assert locations.artifact_dir(url) == tmp_path / "artifacts", url
    assert locations.artifact_dir("sqlite:///file:sub/s.db?uri=true") == Path("sub/artifacts")
    # Without ?uri=true SQLite takes `file:` for part of the file's name, and so do we
    assert locations.artifact_dir("sqlite:///file:sub/s.db") == Path("file:sub/artifacts")


def test_checkpoints_take_the_flag_then_the_environment_then_the_study_file_then_the_user_cache(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("HPSEARCH_CHECKPOINTS", str(tmp_path / "env"))
    assert locations.checkpoint_root(tmp_path / "flag", "/file") == tmp_path / "flag"
    assert locations.checkpoint_root(None, "/file") == tmp_path / "env"
    monkeypatch.delenv("HPSEARCH_CHECKPOINTS")
    assert locations.checkpoint_root(None, "/file") == Path("/file")
    assert (
        locations.checkpoint_root() == Path(platformdirs.user_cache_dir("hpsearch")) / "checkpoints"
    )


def test_a_checkpoint_folder_chosen_on_purpose_is_none_where_only_the_default_is_left(
    tmp_path, monkeypatch
):
    # What a SLURM launch demands: the user cache is local to each node
    monkeypatch.delenv("HPSEARCH_CHECKPOINTS", raising=False)
    assert locations.chosen_checkpoint_root() is None
    assert locations.chosen_checkpoint_root(None, "/file") == Path("/file")
    monkeypatch.setenv("HPSEARCH_CHECKPOINTS", str(tmp_path / "env"))
    assert locations.chosen_checkpoint_root(None, "/file") == tmp_path / "env"
    assert locations.chosen_checkpoint_root(tmp_path / "flag", "/file") == tmp_path / "flag"
