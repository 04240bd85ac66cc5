"""A link to a report the dashboard cannot serve (its file is not in the folder served, or its
study was deleted since the page was opened) is a 404 that says why, where optuna-dashboard
answered 500 and printed a traceback on the dashboard's terminal at every click."""

from __future__ import annotations

import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import optuna

from search.serve.notes import attach_report
from tests.helpers import ROOT
from tests.helpers.dashboard import INTERRUPTIBLE_HPSEARCH, free_port, make_study
from tests.helpers.listening import listening_within


def answer(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as page:
            return page.status, page.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def reported(url: str, name: str, folder: Path) -> tuple[int, str]:
    """A study with a report copied into `folder`: its id and the report's artifact id."""
    study = make_study(url, name=name, trials=2)
    report = folder.parent / f"{name}.html"
    report.write_text("<p>plots</p>")
    return study._study_id, attach_report(study, report, folder)


def test_a_report_link_the_dashboard_cannot_serve_is_a_404_saying_why(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    served, elsewhere = tmp_path / "served", tmp_path / "elsewhere"
    deleted_id, deleted_report = reported(url, "deleted-later", served)
    kept_id, unserved_report = reported(url, "copied-elsewhere", elsewhere)
    port = free_port()
    server = subprocess.Popen(
        [*INTERRUPTIBLE_HPSEARCH, "dashboard", "--storage", url]
        + ["--artifacts", str(served), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert listening_within(port, seconds=60), server.poll()
        assert answer(f"{base}/artifacts/{deleted_id}/{deleted_report}")[0] == 200
        optuna.delete_study(study_name="deleted-later", storage=url)  # a page still links it

        gone = answer(f"{base}/artifacts/{deleted_id}/{deleted_report}")
        unserved = answer(f"{base}/artifacts/{kept_id}/{unserved_report}")
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)

    assert gone == (
        404,
        f"no study {deleted_id} in the storage: the link is to one since deleted\n",
    )
    assert unserved[0] == 404 and f"not in the artifact folder {served}" in unserved[1]
    assert "--artifacts" in unserved[1]
    assert "Traceback" not in err, err
