"""`hpsearch grpc-proxy --host`: an IPv6 address is served (it failed with a traceback from gRPC,
which reads `host:port` and took `::1:13000` for a malformed name), and the line it starts with
tells workers an address they can connect to: never `grpc://0.0.0.0:PORT` for a proxy on every
interface, which no worker on another machine reaches."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests.helpers import ROOT
from tests.helpers.dashboard import free_port, make_study

pytest.importorskip("grpc")


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def proxy_serving(url: str, host: str, connect_to: str) -> tuple[str, int, str]:
    """`hpsearch grpc-proxy --host host` on a free port, asked for the studies through
    `connect_to`: its first line, the port and the study names it answered."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "search", "grpc-proxy", "--storage", url]
        + ["--host", host, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = server.stdout.readline() if server.stdout else ""
        proxy = optuna.storages.GrpcStorageProxy(host=connect_to, port=port)
        proxy.wait_server_ready(timeout=30)
        names = ", ".join(study.study_name for study in proxy.get_all_studies())
        proxy.close()
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert "Traceback" not in err, err
    return first, port, names


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_a_proxy_on_an_ipv6_address_serves_and_names_it_bracketed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    make_study(url, name="over-ipv6", trials=1)

    first, port, names = proxy_serving(url, "::1", connect_to="[::1]")

    assert names == "over-ipv6"
    assert f"on [::1]:{port} " in first and f"--storage grpc://[::1]:{port}" in first, first


def test_a_proxy_on_every_interface_tells_workers_this_machines_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    make_study(url, name="everywhere", trials=1)

    first, port, names = proxy_serving(url, "0.0.0.0", connect_to="127.0.0.1")

    assert names == "everywhere"
    assert f"--storage grpc://{socket.gethostname()}:{port}" in first, first
    assert "grpc://0.0.0.0" not in first
