"""The Optuna releases hpsearch runs on: those whose private names (search.study.optuna_compat)
the suite has checked. Any other is refused with one line before a call into Optuna's internals,
instead of a worker dying mid-search on an AttributeError."""

from __future__ import annotations

import optuna
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from search.errors import HpsearchError

# The Optuna releases the suite passes on; setup.cfg's install_requires says the same (a test
# holds them equal). 4.5 is the floor: the oldest release the storage and worker tests were run on.
SUPPORTED_OPTUNA = ">=4.5,<6"


class UnsupportedOptuna(HpsearchError):
    """The installed Optuna is outside the range hpsearch is tested with."""


def check_version(version: str | None = None) -> None:
    """Refuse an Optuna whose private names we have not checked (the installed one, unless
    `version` is given): one line naming the range."""
    version = version or optuna.__version__
    if not SpecifierSet(SUPPORTED_OPTUNA).contains(Version(version), prereleases=True):
        raise UnsupportedOptuna(
            f"Optuna {version} is installed, but hpsearch works with optuna{SUPPORTED_OPTUNA} "
            f"only (its storage internals are checked against those releases): "
            f"pip install 'optuna{SUPPORTED_OPTUNA}'"
        )
