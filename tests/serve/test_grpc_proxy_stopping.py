"""`hpsearch grpc-proxy` stopped by Ctrl-C or SIGTERM (`docker compose stop`, Kubernetes) exits 0
with one line, and leaves its SQLite storage as it found it: it stops serving, then closes its
connections, so SQLite removes the -wal and -shm files they kept (SIGTERM killed it, and both ways
left them behind)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import optuna
import pytest

from tests.helpers import ROOT
from tests.helpers.dashboard import INTERRUPTIBLE_HPSEARCH, free_port, make_study

pytest.importorskip("grpc")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_a_stopped_proxy_exits_0_and_leaves_its_sqlite_storage_as_it_found_it(
    tmp_path: Path, signum: signal.Signals
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    make_study(url, name="served", trials=1)
    port = free_port()
    server = subprocess.Popen(
        [*INTERRUPTIBLE_HPSEARCH, "grpc-proxy", "--storage", url, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and "gRPC storage proxy on" in server.stdout.readline()
        proxy = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
        proxy.wait_server_ready(timeout=30)
        assert [study.study_name for study in proxy.get_all_studies()] == ["served"]
        proxy.close()
        # What the stop must close: the connection that served the call keeps SQLite's WAL open
        assert (tmp_path / "studies.db-wal").exists()
        server.send_signal(signum)
        _, err = server.communicate(timeout=30)
    finally:
        server.kill()
    assert server.returncode == 0, err
    assert err.strip().splitlines()[-1] == "grpc-proxy stopped" and "Traceback" not in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["studies.db"]
