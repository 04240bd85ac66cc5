"""Ctrl-C on `hpsearch dashboard` while a request waits on a storage that went away (a gRPC proxy
stopped, a database down: each call is retried for minutes). The first Ctrl-C used to wait for
that request without a word, and a second one stopped it with a traceback: now the first says
what it waits for and stops within a few seconds, and neither prints a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from search.serve.dashboard import STOP_GRACE_SECONDS
from tests.helpers import ROOT
from tests.helpers.dashboard import INTERRUPTIBLE_HPSEARCH, free_port, make_study
from tests.helpers.listening import listening_within

pytest.importorskip("grpc")


def started(command: list[str], says: str) -> subprocess.Popen:
    server = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    first = server.stdout.readline() if server.stdout else ""
    if says not in first:
        server.kill()
        raise AssertionError(f"{command[-6:]} did not start: {first}{server.communicate()[1]}")
    return server


def request_in_background(url: str) -> threading.Thread:
    def fetch() -> None:
        try:
            with urllib.request.urlopen(url, timeout=120) as answer:
                answer.read()
        except OSError:  # the 503 the stopped dashboard answers, or the connection closed
            pass

    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def dashboards_behind_a_stopped_proxy(tmp_path: Path) -> Iterator[list[subprocess.Popen]]:
    """Two dashboards on a study behind a gRPC proxy, which is then stopped: each yielded with a
    request to it left waiting for the storage."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    make_study(url, trials=2)
    proxy_port = free_port()
    proxy = started(
        [sys.executable, "-m", "search", "grpc-proxy", "--storage", url]
        + ["--port", str(proxy_port)],
        "gRPC storage proxy on",
    )
    servers = []
    try:
        for name in ("once", "twice"):
            port = free_port()
            server = started(
                [
                    *INTERRUPTIBLE_HPSEARCH,
                    "dashboard",
                    "--storage",
                    f"grpc://127.0.0.1:{proxy_port}",
                ]
                + ["--artifacts", str(tmp_path / name), "--port", str(port)],
                "dashboard on http://",
            )
            servers.append((server, port))
            assert listening_within(port, seconds=60), server.poll()
        proxy.terminate()
        proxy.communicate(timeout=30)
        for _, port in servers:
            request_in_background(f"http://127.0.0.1:{port}/api/studies")
        time.sleep(3)  # the requests are in the dashboards' storage retries by now
        yield [server for server, _ in servers]
    finally:
        for process in (proxy, *(server for server, _ in servers)):
            if process.poll() is None:
                process.kill()
                process.communicate()


def test_ctrl_c_during_a_request_waiting_on_the_storage_says_so_and_stops(
    dashboards_behind_a_stopped_proxy: list[subprocess.Popen],
) -> None:
    once, twice = dashboards_behind_a_stopped_proxy

    for server in (once, twice):
        server.send_signal(signal.SIGINT)
    time.sleep(0.5)
    twice.send_signal(signal.SIGINT)  # a second Ctrl-C: stops now
    began = time.monotonic()
    _, err_twice = twice.communicate(timeout=30)
    assert time.monotonic() - began < 3, err_twice

    # The first Ctrl-C alone: the request is given up after the grace, not minutes later
    _, err_once = once.communicate(timeout=STOP_GRACE_SECONDS + 20)

    for server, err in ((once, err_once), (twice, err_twice)):
        assert server.returncode == 0, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        assert "dashboard stopping once the request in hand is answered" in err, (err, err_once)
        assert "Ctrl-C again stops it now" in err and "dashboard stopped" in err, err
