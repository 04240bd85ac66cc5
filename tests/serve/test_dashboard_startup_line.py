"""The line `hpsearch dashboard` starts with names the artifact folder in full: beside a PostgreSQL
storage the default is `artifacts` of the current folder, and "artifacts in artifacts" told
nobody which."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path

from tests.helpers import ROOT
from tests.helpers.dashboard import INTERRUPTIBLE_HPSEARCH, free_port, make_study
from tests.helpers.listening import listening_within


def test_the_startup_line_names_the_artifact_folder_in_full(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    make_study(url, trials=2)
    port = free_port()
    server = subprocess.Popen(
        [*INTERRUPTIBLE_HPSEARCH, "dashboard", "--storage", url]
        + ["--artifacts", "reports", "--port", str(port)],  # relative to where it runs
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = server.stdout.readline() if server.stdout else ""
        # The line comes just before the server binds
        assert listening_within(port, seconds=30), (first, server.poll())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard/", timeout=30) as page:
            assert page.status == 200
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert f"artifacts in {tmp_path / 'reports'}; Ctrl-C stops it" in first, (first, err)
