"""The small real search the results tests read, built once per test session."""

from __future__ import annotations

import pytest

from tests.helpers.small_search import SmallSearch, build_small_search


@pytest.fixture(scope="session")
def small_search(tmp_path_factory) -> SmallSearch:
    return build_small_search(tmp_path_factory.getbasetemp() / "small-search")
