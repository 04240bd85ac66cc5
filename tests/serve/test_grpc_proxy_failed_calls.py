"""A worker's call that the storage behind `hpsearch grpc-proxy` fails (here its database dropped
while the proxy serves) is one line on the proxy's terminal, in the database's own words: gRPC
logged it to a logger it silences, so the proxy said nothing while its workers failed; and one line
at the client, which had a gRPC traceback."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest

from search.cli import main
from tests.helpers import ROOT, postgres
from tests.helpers.dashboard import free_port, make_study

pytest.importorskip("grpc")


@pytest.mark.postgres
def test_a_call_the_database_fails_is_one_line_on_the_proxys_terminal_and_at_the_client(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make_study(pg_url, name="dropped-later", trials=1)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "search", "grpc-proxy", "--storage", pg_url] + ["--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    database = pg_url.rsplit("/", 1)[1]
    try:
        proxy = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
        proxy.wait_server_ready(timeout=30)
        assert [study.study_name for study in proxy.get_all_studies()] == ["dropped-later"]
        with postgres.connect(autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        proxy.close()
        status = main(["status", "--storage", f"grpc://127.0.0.1:{port}"])
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)

    [line] = [line for line in err.splitlines() if "a worker's call failed" in line]
    assert line.startswith("hpsearch: grpc-proxy: a worker's call failed: "), err
    assert f'database "{database}" does not exist' in line, err
    assert "Traceback" not in err
    # and the client, told only Optuna's guess at the cause, says where the cause is told
    assert status == 2
    said = capsys.readouterr().err
    assert said.startswith(f"hpsearch: error: gRPC proxy 127.0.0.1:{port} failed the call"), said
    assert "`hpsearch grpc-proxy`'s terminal or log" in said and "Traceback" not in said
