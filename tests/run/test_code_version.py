"""The code version every trial records: the package's version and, in a checkout of hpsearch,
its commit; never the commit of another project that happens to hold the installed copy."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

from search.run import version
from search.run.version import _git_commit


def _git(*args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def test_a_checkout_names_its_commit_and_an_install_inside_another_project_names_none(tmp_path):
    project = tmp_path / "project"
    installed = project / ".venv" / "lib" / "python3.11" / "site-packages"
    installed.mkdir(parents=True)
    _git("init", "-q", str(project))
    _git("-C", str(project), "commit", "-q", "--allow-empty", "-m", "another project")
    assert _git_commit(project) == _git("-C", str(project), "rev-parse", "--short", "HEAD")
    # pip install hpsearch into project/.venv: git would find project's commit walking up
    assert _git_commit(installed) is None
    assert _git_commit(tmp_path / "no-checkout") is None


def test_every_trial_of_a_checkout_records_its_commit(tmp_path):
    # code_version() looks for the checkout from where version.py lies in it: a copy laid out as in
    # the repository, in a checkout of its own, must name that checkout's commit
    checkout = tmp_path / "hpsearch"
    copy = checkout / "search" / "run" / "version.py"
    copy.parent.mkdir(parents=True)
    shutil.copy(version.__file__, copy)
    _git("init", "-q", str(checkout))
    _git("-C", str(checkout), "add", ".")
    _git("-C", str(checkout), "commit", "-q", "-m", "hpsearch")
    spec = importlib.util.spec_from_file_location("version_in_a_checkout", copy)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    commit = _git("-C", str(checkout), "rev-parse", "--short", "HEAD")
    assert module.code_version().endswith(f"+{commit}")
