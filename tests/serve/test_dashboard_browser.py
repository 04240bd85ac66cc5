"""`hpsearch dashboard` in a real browser: a study
the test made renders with its name and trials."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from search.serve.notes import attach_report
from tests.helpers.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.helpers.dashboard import free_port, make_study

ROOT = Path(__file__).resolve().parents[2]
# Kept for a person to look at; git-ignored
SCREENSHOT = ROOT / "tests" / "artifacts" / "dashboard.png"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (Debian package chromium)"
    ),
]


@pytest.fixture
def dashboard_url(tmp_path):
    """A dashboard subprocess on a study of 6 trials with a report; yields (base URL, study id)."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = make_study(url, name="browser-study", trials=6)
    report = tmp_path / "report.html"
    report.write_text("<h1>plots</h1>")
    # Where the dashboard looks: beside the SQLite file
    attach_report(study, report, tmp_path / "artifacts")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "search", "dashboard", "--storage", url, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, server)
        yield base, study._study_id
    finally:
        server.terminate()
        server.communicate(timeout=30)


def wait_until_serving(base: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the dashboard exited with {server.returncode}: {server.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{base}/api/meta", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the dashboard did not answer on {base} within {seconds} s")


def chromium(*arguments: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_dashboard_shows_the_study_its_trials_and_its_report_note(dashboard_url):
    base, study_id = dashboard_url
    dom = chromium(
        "--dump-dom", "--virtual-time-budget=15000", f"{base}/dashboard/studies/{study_id}/trials"
    )
    assert "browser-study" in dom
    assert ">6 Trials<" in dom.replace("<!-- -->", "")

    note = chromium(
        "--dump-dom", "--virtual-time-budget=15000", f"{base}/dashboard/studies/{study_id}/note"
    )
    assert ">Report</h2>" in note and f'href="/artifacts/{study_id}/' in note

    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    chromium(
        f"--screenshot={SCREENSHOT}",
        "--window-size=1400,900",
        "--virtual-time-budget=15000",
        f"{base}/dashboard/studies/{study_id}",
    )
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
