"""One path from the command line to a worker's first trial: per process, the storage opened
once, the study file's settings checked once, the study loaded once.

Counted with spies that call the real functions, from the command's start to the moment the
objective first runs, in-process (a lone CPU worker runs in `hpsearch run`'s own process).
"""

from __future__ import annotations

from collections import Counter

import optuna
import pytest

import search.run.joining
import search.study.opening
from search.cli import main
from search.run.objective import Objective
from search.study.resilience import ResilientRDBStorage
from tests.helpers.studies import write_study


class Counts:
    def __init__(self) -> None:
        self.calls: Counter = Counter()  # since the last `start`
        self.at_first_trial: Counter = Counter()  # as they stood when the first trial began

    def start(self) -> None:
        self.calls.clear()
        self.at_first_trial.clear()


@pytest.fixture
def counted(monkeypatch, one_torch_thread) -> Counts:
    """Counts of storage openings, study loads and creations, and settings checks."""
    counts = Counts()
    calls, at_first_trial = counts.calls, counts.at_first_trial

    def spy(name, function):
        def call(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return call

    opened = ResilientRDBStorage.__init__
    monkeypatch.setattr(ResilientRDBStorage, "__init__", spy("storage opened", opened))
    monkeypatch.setattr(optuna, "load_study", spy("study loaded", optuna.load_study))
    monkeypatch.setattr(optuna, "create_study", spy("study created", optuna.create_study))
    check = spy("settings checked", search.study.opening.check_settings)
    monkeypatch.setattr(search.study.opening, "check_settings", check)
    monkeypatch.setattr(search.run.joining, "check_settings", check)
    objective = Objective.steps

    def first_trial(self, *args, **kwargs):
        if not at_first_trial:
            at_first_trial.update(calls, trials=1)
        return objective(self, *args, **kwargs)

    monkeypatch.setattr(Objective, "steps", first_trial)
    return counts


def run(*argv: str) -> None:
    assert main([*argv, "--device", "cpu", "--no-progress"]) == 0


def test_a_new_study_is_opened_once_and_created_once(tmp_path, image_folder, counted):
    study = write_study(tmp_path, image_folder, trials=1, epochs=1)
    counted.start()
    run("run", str(study))
    assert counted.at_first_trial == {"trials": 1, "storage opened": 1, "study created": 1}


def test_a_resumed_study_is_opened_checked_and_loaded_once(tmp_path, image_folder, counted):
    study = write_study(tmp_path, image_folder, trials=1, epochs=1)
    assert main(["run", str(study), "--create-only", "--device", "cpu"]) == 0
    counted.start()
    run("run", str(study))
    assert counted.at_first_trial == {
        **{"trials": 1, "storage opened": 1, "study loaded": 1, "settings checked": 1}
    }


@pytest.mark.parametrize("joined_by", ["study file", "name"])
def test_a_worker_opens_checks_and_loads_the_study_once(tmp_path, image_folder, counted, joined_by):
    study = write_study(tmp_path, image_folder, trials=1, epochs=1)
    assert main(["run", str(study), "--create-only", "--device", "cpu"]) == 0
    counted.start()
    run("worker", *([str(study)] if joined_by == "study file" else ["--study", "test-study"]))
    # A stored study's settings are the ones it runs: nothing to check them against
    checked = {"settings checked": 1} if joined_by == "study file" else {}
    assert counted.at_first_trial == {
        **{"trials": 1, "storage opened": 1, "study loaded": 1, **checked}
    }
