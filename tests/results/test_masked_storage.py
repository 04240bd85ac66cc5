"""A storage URL that carries a password in a query parameter (libpq and SQLAlchemy accept one):
report and export, run for real against PostgreSQL, show and store it only masked: in what they
print, the report page, the export's provenance, the artifact copy and the study note."""

from __future__ import annotations

from pathlib import Path

import optuna
import optuna_dashboard
import pytest

from search.cli import main

SECRET = "Qu3ryParamSecret"


@pytest.fixture
def secret_url(small_search, pg_url):
    """A fresh database holding a copy of the small search, named by a URL with a secret in it."""
    url = f"{pg_url}?sslmode=disable&password={SECRET}"
    optuna.copy_study(
        from_study_name=small_search.study, from_storage=small_search.url, to_storage=url
    )
    return url


def _every_file_under(folder: Path) -> str:
    return "".join(
        path.read_bytes().decode("utf-8", "replace") for path in folder.rglob("*") if path.is_file()
    )


def test_report_and_export_never_show_or_store_a_query_password(
    secret_url, small_search, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    study = ["--storage", secret_url, "--study", small_search.study]
    assert main(["report", *study, "-o", "report.html", "--artifacts", "artifacts"]) == 0
    assert main(["export", *study, "-o", "best.toml"]) == 0

    out, err = capsys.readouterr()
    note = optuna_dashboard.get_note(
        optuna.load_study(study_name=small_search.study, storage=secret_url)
    )
    written = _every_file_under(tmp_path)
    assert "password=***" in written and "Best parameters" in note
    assert SECRET not in out + err + written + note
