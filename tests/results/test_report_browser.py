"""The report in a real browser: headless Chromium opens it offline, every figure draws, nothing
runs that the page did not put there, and a screenshot is kept under tests/artifacts/."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from search.cli import main
from tests.helpers.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.helpers.small_search import HOSTILE_STUDY, build_small_search

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
BROWSER_SECONDS = 120

# One list: a second `pytestmark = ...` would replace the skip instead of adding to it.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
    ),
    pytest.mark.usefixtures("one_torch_thread"),
]


class DrawnFigures(HTMLParser):
    """Counts Plotly's plot divs (.js-plotly-plot) and those it drew an svg.main-svg into.

    The report's figure divs are siblings, never nested, so an svg belongs
    to the plot div opened last.
    """

    def __init__(self) -> None:
        super().__init__()
        self.plots: list[bool] = []  # per plot div, in page order: whether it holds an svg.main-svg
        self.body: dict[str, str | None] = {}
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        classes = (values.get("class") or "").split()
        if tag == "body":
            self.body = values
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "div" and "js-plotly-plot" in classes:
            self.plots.append(False)
        elif tag == "svg" and "main-svg" in classes and self.plots:
            self.plots[-1] = True


def chromium(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            # No host resolves, so a figure that needed the network could not draw.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}",
            *flags,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=BROWSER_SECONDS,
    )


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    search = build_small_search(tmp_path_factory.getbasetemp() / "small-search")
    path = tmp_path_factory.mktemp("browser") / "report.html"
    assert (
        main(
            [
                "report",
                "--storage",
                search.url,
                "--study",
                search.study,
                "--study",
                search.hostile,
                "-o",
                str(path),
            ]
        )
        == 0
    )
    return path


def test_every_figure_draws_in_chromium_and_no_user_text_runs(page, tmp_path):
    run = chromium(page, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    dom = DrawnFigures()
    dom.feed(run.stdout)
    expected = int(re.search(r'data-figures="(\d+)"', page.read_text()).group(1))
    assert expected >= 6 + 2 * 5  # the factor figures, and most of Optuna's views for each study
    assert len(dom.plots) == expected and all(dom.plots)
    assert "report-drawn" in dom.ids and "data-figure-error" not in dom.body
    assert "data-pwned" not in dom.body  # the hostile parameter name and fail reason stayed text
    assert HOSTILE_STUDY not in run.stdout and "&lt;script&gt;alert(1)&lt;/script&gt;" in run.stdout


def test_a_screenshot_of_the_report_is_kept(page, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    run = chromium(
        page,
        tmp_path / "profile",
        "--virtual-time-budget=10000",
        "--window-size=1400,3000",
        f"--screenshot={shot}",
        "--hide-scrollbars",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000
