"""Fixtures every test may use: small image folders, and user folders kept out of the user's own."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
import torch

from tests.helpers.images import make_image_folder


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


@pytest.fixture(scope="module")
def one_torch_thread():
    """The test images are tiny: one thread trains them as fast as several, and never spins against
    other processes for a shared machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "root", "dbname": "postgres"}


@pytest.fixture
def pg_url():
    """A database of its own on the real PostgreSQL, dropped after the test."""
    try:
        psycopg.connect(**POSTGRES, connect_timeout=3).close()
    except psycopg.OperationalError:
        pytest.fail("PostgreSQL is not running on 127.0.0.1:5432; .ci/run starts it")
    name = f"hpsearch_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**POSTGRES, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://root@127.0.0.1:5432/{name}"
    with psycopg.connect(**POSTGRES, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
