"""Short seeded chaos runs (benchmarks/chaos): a real `hpsearch run` of two workers on an asha
study in a PostgreSQL cluster of its own, while a worker is killed, the database stops for a few
seconds and (where one is on disk in time) a checkpoint is cut short, or, with the workers behind
`hpsearch grpc-proxy`, while the proxy is killed and started again and the database behind it
stops; then every invariant the long run checks must hold."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks.chaos.harness import run_chaos
from benchmarks.chaos.report import all_held, text
from benchmarks.chaos.scene import Settings

FAULTS = ("kill_worker", "db_outage", "truncate_checkpoint")
PROXY_FAULTS = ("restart_proxy", "db_outage")

SHORT = Settings(
    seed=2,
    minutes=1.5,  # faults strike within this, each as soon as it can
    workers=2,
    trials=4,
    epochs=3,
    # The trial budget ends it: with the epoch budget met first, a retry queued by the kill
    # is left WAITING and `run` returns (search/run/worker.py, next_trial; reported)
    epochs_budget=12,
    images_per_class=100,
    faults=FAULTS,
    in_order=True,
    max_faults=len(FAULTS),
    gap_seconds=(1.0, 2.0),
    cap_minutes=3.0,
    tmpfs_mb=None,  # a plain folder: no disk fault here
    rounds=1,
)


def test_a_search_keeps_every_invariant_through_a_kill_and_an_outage(tmp_path, private_postgres):
    """And through a checkpoint cut short, where one is on disk when its turn comes (one run in
    three here, 2026-12-06: the search may be done first; tests/run/test_dead_workers.py cuts one
    every time)."""
    lines: list[str] = []
    result = run_chaos(SHORT, tmp_path, say=lines.append, cluster=private_postgres)
    report = "\n".join([*lines, text(result)])
    assert {"kill_worker", "db_outage"} <= result["faults_by_kind"].keys(), report
    assert all_held(result), report


def test_a_search_through_the_grpc_proxy_keeps_every_invariant_through_its_restart(
    tmp_path, private_postgres
):
    pytest.importorskip("grpc")
    settings = dataclasses.replace(
        SHORT, faults=PROXY_FAULTS, max_faults=len(PROXY_FAULTS), through_proxy=True
    )
    lines: list[str] = []
    result = run_chaos(settings, tmp_path, say=lines.append, cluster=private_postgres)
    report = "\n".join([*lines, text(result)])
    assert result["faults_by_kind"] == {"db_outage": 1, "restart_proxy": 1}, report
    assert all_held(result), report
