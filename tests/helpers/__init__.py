"""What several test modules share, importable as `tests.helpers.*` (never through conftest)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
