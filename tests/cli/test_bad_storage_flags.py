"""A port in use, for real: `hpsearch dashboard` and `grpc-proxy` refuse it in one line, exit 2,
before they open a storage or make a folder (the other bad storage inputs are rows of
test_bad_input.py's table; these need a socket listening while the command runs)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest

from search.cli import main


@pytest.fixture
def port_in_use() -> Iterator[int]:
    """A port another program listens on, as a dashboard left running would."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def _refused(argv: list[str], capsys) -> str:
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("hpsearch: error: "), err
    return err


def test_the_dashboard_on_a_port_in_use_is_one_line_and_makes_no_folder(
    port_in_use, tmp_path, capsys
):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="s", storage=url)
    before = sorted(tmp_path.rglob("*"))

    err = _refused(["dashboard", "--storage", url, "--port", str(port_in_use)], capsys)

    assert f"port {port_in_use} on 127.0.0.1 is in use" in err and "pass --port N" in err
    assert sorted(tmp_path.rglob("*")) == before  # no artifacts/ beside the database


def test_the_grpc_proxy_on_a_port_in_use_makes_no_storage(port_in_use, tmp_path, capsys):
    err = _refused(["grpc-proxy", "--port", str(port_in_use)], capsys)  # default ./hpsearch.db
    assert f"port {port_in_use} on 127.0.0.1 is in use" in err
    assert list(tmp_path.iterdir()) == []  # the current folder (tests/conftest.py)


def test_a_second_grpc_proxy_on_the_port_of_a_running_one_is_refused(tmp_path, capsys):
    # gRPC servers bind with SO_REUSEPORT: a second proxy would bind too, and the two would share
    # the workers' connections, each with its own cache of the study
    grpc = pytest.importorskip("grpc")
    running = grpc.server(ThreadPoolExecutor(max_workers=1))
    port = running.add_insecure_port("127.0.0.1:0")
    running.start()
    try:
        err = _refused(["grpc-proxy", "--port", str(port)], capsys)
    finally:
        running.stop(grace=None)
    assert f"port {port} on 127.0.0.1 is in use" in err
    assert not Path("hpsearch.db").exists()
