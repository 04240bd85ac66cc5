"""Fixtures every test may use: small image folders, and user folders kept out of the user's own."""

from __future__ import annotations

from pathlib import Path

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
    """Keep every test's caches, checkpoints and downloads out of the user's own folders."""
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
