"""A report made while the search runs draws and counts the trials that ended, and says the
running ones wait: it had said "no trial of these studies sets optimizer" of a study whose one
trial was training with an optimizer, and drawn 3 of 4 trials' curves without a word."""

from __future__ import annotations

import optuna

from search import attrs
from search.results.page import build_report
from tests.helpers.made_trials import SETTINGS, made_study


def running_trial(study: optuna.Study) -> None:
    """A trial as a worker records it while it trains: its config, an epoch reported."""
    trial = study.ask()
    config = {**SETTINGS, "epochs": 6, "optimizer": "adam", "lr": 1e-3, "eps": 1e-8}
    trial.set_user_attr(attrs.CONFIG, config)
    trial.report(0.45, 1)


def test_a_study_whose_one_trial_still_trains_says_it_waits_rather_than_sets_nothing():
    study = optuna.create_study(direction="maximize", study_name="first-trial")
    running_trial(study)

    page = build_report([study]).html

    assert "no trial of these studies sets" not in page
    assert "no finished trial of these studies sets optimizer" in page
    assert "1 running (drawn and counted once they end)" in page


def test_trials_still_training_are_named_beside_those_drawn(tmp_path):
    study = made_study(f"sqlite:///{tmp_path / 's.db'}", "mid-search", 3)
    running_trial(study)

    page = build_report([study]).html

    assert "1 running (drawn and counted once they end)" in page
