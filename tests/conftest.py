"""Fixtures every test may use: small image folders, user folders kept out of the user's own, a
PostgreSQL or MariaDB database of the test's own; and the markers that name what a test needs
beyond Python.

A test that needs PostgreSQL, MariaDB, SLURM or a browser carries the marker `postgres`, `mysql`,
`slurm` or `browser` (registered in setup.cfg), so `pytest -m "not postgres and not mysql and not
slurm and not browser"` runs the rest on any machine. The markers come from the fixtures and
helpers that reach the service, never from memory: see MARKER_OF_FIXTURE, and
tests/launch/test_slurm.py's needs_slurm.

Under `-n N --dist loadgroup` (the README's test command) tests sharing a module-scoped fixture of
their module run on one worker, and xdist_group keeps apart what must not overlap: the SLURM
cluster's tests ("slurm") and the tests that torch.compile ("torch-compile").
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest
import torch

from search.run import liveness
from search.study import resilience
from tests.helpers import mysql, postgres
from tests.helpers.images import make_image_folder
from tests.helpers.private_postgres import ClusterUnavailable, private_cluster
from tests.helpers.small_disks import SmallDisks

# A test that uses one of these fixtures, directly or through another fixture, gets the marker.
MARKER_OF_FIXTURE = {
    "pg_url": "postgres",
    "mysql_url": "mysql",
    "private_postgres": "postgres",  # a server of the test's own (initdb), to stop and start
    "drawn": "browser",  # tests/results/test_legible_figures.py: reports drawn in Chromium
}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in MARKER_OF_FIXTURE.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(MARKER_OF_FIXTURE[fixture])
        module = item.getparent(pytest.Module)
        if module is not None and _uses_a_module_fixture_of(module, item):
            item.add_marker(pytest.mark.xdist_group(module.nodeid))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under `--dist loadgroup`, a test marked xdist_group fails unless pytest-xdist marked its id
    with its group (`@group`), which is how a group reaches one worker: with pytest 9.2 it
    silently did not (pytest-dev/pytest-xdist#1386), and the SLURM tests ran at once and every
    module's shared search was built on each worker."""
    loadgroup = getattr(item.config.option, "loadgroup", False)  # set in pytest-xdist's workers
    if loadgroup and item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
        pytest.fail(
            f"pytest-xdist did not keep this test in its xdist_group under pytest "
            f"{pytest.__version__}: install the versions setup.cfg's test extra names "
            "(pip install -e '.[test]')",
            pytrace=False,
        )


def _uses_a_module_fixture_of(module: pytest.Module, item: pytest.Item) -> bool:
    """Whether the test uses a module-scoped fixture its own module defines (a search run or a
    model trained once for the module's tests): under `-n N --dist loadgroup` those tests go to one
    worker, which builds it once, not once per worker. (`_fixtureinfo`: pytest has no public way to
    a test's fixture definitions.)"""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info is not None else ()
    return any(
        chain[-1].scope == "module" and chain[-1].baseid == module.nodeid for chain in definitions
    )


@pytest.fixture(scope="session", autouse=True)
def cores_shared_with_other_test_workers():
    """Under pytest-xdist (-n N) N processes share the cores: each gets its share of torch threads,
    and so do the processes a test starts (OMP_NUM_THREADS), rather than each spinning on all."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        yield
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    before = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    yield
    torch.set_num_threads(before[0])
    if before[1] is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = before[1]


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "images")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def private_user_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's caches, checkpoints and downloads out of the user's own folders, and
    what a command writes in the current folder (hpsearch.db, runs/) out of the repository."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(tmp_path / "user-cache"))
    monkeypatch.setenv("HPSEARCH_CHECKPOINTS", str(tmp_path / "user-checkpoints"))
    monkeypatch.setenv("HPSEARCH_DATA_ROOT", str(tmp_path / "user-data"))
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)


@pytest.fixture(autouse=True)
def no_outage_seen_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a fresh process would, having seen no storage outage: a sweep counts
    other trials' silence from the last outage its process saw (search.run.liveness), and one an
    earlier test caused in this xdist worker kept a silent trial of the next test alive."""
    monkeypatch.setattr(liveness._HeldBack, "until", 0.0)
    monkeypatch.setattr(resilience._Outages, "last_seen", 0.0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """The test images are tiny: one thread trains them as fast as several, and never spins against
    other processes for a shared machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _require_marker(request: pytest.FixtureRequest, fixture: str) -> None:
    """A test that reaches `fixture` through request.getfixturevalue gets no marker from it (see
    MARKER_OF_FIXTURE), and `-m "not <marker>"` would keep it: it must carry the marker itself."""
    marker = MARKER_OF_FIXTURE[fixture]
    if request.node.get_closest_marker(marker) is None:
        pytest.fail(
            f"{request.node.nodeid} reaches {fixture} through request.getfixturevalue: mark it "
            f"{marker} (a parameter: pytest.param(..., marks=pytest.mark.{marker}))"
        )


@pytest.fixture
def pg_url(request: pytest.FixtureRequest):
    """A database of its own on the test PostgreSQL (tests/helpers/postgres.py), dropped after."""
    _require_marker(request, "pg_url")
    try:
        postgres.connect(connect_timeout=3).close()
    except psycopg.OperationalError as error:
        pytest.fail(
            f"cannot reach the test PostgreSQL {postgres.SERVER_URL} ({error}); .ci/run starts "
            'it, HPSEARCH_TEST_POSTGRES names another, -m "not postgres" leaves these tests out'
        )
    name = f"hpsearch_test_{uuid.uuid4().hex[:10]}"
    with postgres.connect(autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield postgres.storage_url(name)
    with postgres.connect(autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mysql_url(request: pytest.FixtureRequest):
    """A database of its own on the test MariaDB (tests/helpers/mysql.py), dropped after."""
    _require_marker(request, "mysql_url")
    try:
        mysql.connect(connect_timeout=3).close()
    except pymysql.err.OperationalError as error:
        pytest.fail(
            f"cannot reach the test MariaDB {mysql.SERVER_URL} ({error}); .ci/run starts it, "
            'HPSEARCH_TEST_MYSQL names another, -m "not mysql" leaves these tests out'
        )
    name = f"hpsearch_test_{uuid.uuid4().hex[:10]}"
    mysql.execute(f"CREATE DATABASE {name}")
    yield mysql.storage_url(name)
    mysql.execute(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def private_postgres():
    """A PostgreSQL cluster of the test's own (tests/helpers/private_postgres.py), which it may
    stop and start; skipped where PostgreSQL's server tools are not installed."""
    try:
        with private_cluster() as cluster:
            yield cluster
    except ClusterUnavailable as error:
        pytest.skip(f"no private PostgreSQL cluster: {error}")


@pytest.fixture
def small_disks() -> Iterator[SmallDisks]:
    """Folders on disks that fill up for real, unmounted after the test."""
    disks = SmallDisks()
    yield disks
    for folder in disks.mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
