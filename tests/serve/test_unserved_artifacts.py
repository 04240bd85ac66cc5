"""A dashboard started on another artifact folder than the one `report` copied a study's report
into answers the link on the study's note with an error (and a traceback on its terminal) at every
click: it says so when it starts, naming the folder and how to serve the right one."""

from __future__ import annotations

import signal
import subprocess

from search.serve.notes import attach_report
from tests.helpers import ROOT
from tests.helpers.dashboard import INTERRUPTIBLE_HPSEARCH, free_port, make_study


def dashboard_output(url: str, artifacts, cwd=ROOT) -> tuple[str, str]:
    """What `hpsearch dashboard` says on its two streams from its start to a Ctrl-C."""
    server = subprocess.Popen(
        [*INTERRUPTIBLE_HPSEARCH, "dashboard", "--storage", url]
        + ["--artifacts", str(artifacts), "--port", str(free_port())],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = server.stdout.readline() if server.stdout else ""
    if "dashboard on http://" in first:
        server.send_signal(signal.SIGINT)
    out, err = server.communicate(timeout=30)
    assert "dashboard on http://" in first, err
    return first + out, err


def test_a_dashboard_on_another_artifact_folder_says_the_reports_are_not_there(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = make_study(url, name="lr-search")
    report = tmp_path / "report.html"
    report.write_text("<p>plots</p>")
    attach_report(study, report, tmp_path / "written-here")

    _, err = dashboard_output(url, "served-here", cwd=tmp_path)

    [warning] = [line for line in err.splitlines() if "warning" in line]
    # In full, as the line it starts with says it: "served-here" alone names no folder
    assert warning.startswith(f"hpsearch: warning: artifact folder {tmp_path / 'served-here'} ")
    assert "1 of study 'lr-search'" in warning and "--artifacts" in warning

    _, err = dashboard_output(url, tmp_path / "written-here")

    assert "warning" not in err
