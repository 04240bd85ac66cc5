"""A small disk that really fills up: tmpfs mounts of a few kB (the `small_disks` fixture of
tests/conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


class SmallDisks:
    """tmpfs mounts of a few kB: a folder on a disk that fills up for real (ENOSPC from the
    kernel, wherever the write happens), and that grows again with its files kept."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def mount(self, folder: Path, size: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        self.mounted.append(folder)
        return folder

    def grow(self, folder: Path, size: str) -> None:
        """Room again, as when space is freed: the files written so far stay."""
        subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)
