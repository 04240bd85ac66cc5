"""`hpsearch report -o report.png` is refused, not answered with an HTML page under an image's
name: the report is one HTML page, and its figures as PNG files are --png-dir's."""

from __future__ import annotations

import pytest

from search.cli import main
from tests.helpers.made_trials import made_study


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('named') / 'named.db'}"
    made_study(url, "named", 3)
    return url


@pytest.mark.parametrize("name", ["report.png", "report.PDF", "figures.svg"])
def test_an_output_named_as_another_format_is_one_line_and_nothing_written(
    url, tmp_path, capsys, name
):
    status = main(["report", "--storage", url, "--study", "named", "-o", str(tmp_path / name)])
    error = capsys.readouterr().err
    assert status == 2
    assert error.count("\n") == 1 and "name a .html file" in error and "--png-dir" in error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["report.html", "report.htm"])
def test_an_html_output_is_written(url, tmp_path, capsys, name):
    page = tmp_path / name
    assert main(["report", "--storage", url, "--study", "named", "-o", str(page)]) == 0
    assert page.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
