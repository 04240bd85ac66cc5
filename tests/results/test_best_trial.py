"""Every command names the same best trial and shows the whole configuration it trained with.

The small search is a points study: both adam points share one eps, so eps is no Optuna
parameter there, and the fixed training settings (epochs, schedule, ...) never are. Showing
`best.params` would leave them out; each command must show the trial's configuration."""

from __future__ import annotations

import json

import optuna
import optuna_dashboard
import pytest

from search import attrs
from search.cli import main
from search.results.report_data import get_summary_info
from search.results.status import study_status
from search.study.storage import open_storage

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def study(small_search) -> optuna.Study:
    return optuna.load_study(study_name=small_search.study, storage=small_search.url)


def expected_best(study: optuna.Study) -> optuna.trial.FrozenTrial:
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    best_value = max(trial.value for trial in complete)
    return min(
        (trial for trial in complete if trial.value == best_value), key=lambda trial: trial.number
    )


def test_the_points_study_fixes_settings_that_are_no_optuna_parameter(study):
    best = expected_best(study)
    config = best.user_attrs[attrs.CONFIG]
    assert set(config) - set(best.params) >= {"epochs", "schedule", "batch_size", "image_size"}
    adam = [trial for trial in study.trials if trial.params.get("optimizer") == "adam"]
    assert adam and all(
        "eps" not in trial.params and trial.user_attrs[attrs.CONFIG]["eps"] == 1e-8
        for trial in adam
    )


def test_status_report_export_and_the_dashboard_note_agree(study, small_search, tmp_path, capsys):
    best = expected_best(study)
    config = best.user_attrs[attrs.CONFIG]
    whole = attrs.settings_text(config)

    row = study_status(open_storage(small_search.url), small_search.study)[0]
    assert (row["best_trial"], row["best_config"]) == (best.number, config)
    assert main(["status", "--storage", small_search.url, "--study", small_search.study]) == 0
    assert f"trial {best.number}, {whole}" in capsys.readouterr().out

    summary = get_summary_info(study)
    assert (summary.best.number, summary.best_settings) == (best.number, config)

    assert main(["export", "--storage", small_search.url, "--study", small_search.study]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["provenance"]["trial"] == best.number
    assert {key: exported[key] for key in config} == config

    assert (
        main(
            [
                "report",
                "--storage",
                small_search.url,
                "--study",
                small_search.study,
                "-o",
                str(tmp_path / "report.html"),
                "--artifacts",
                str(tmp_path / "artifacts"),
            ]
        )
        == 0
    )
    note = optuna_dashboard.get_note(study)
    assert f"Best: trial {best.number}, val top-1 {best.value:.2%} ({whole})" in note


def test_status_as_json_carries_the_configuration(small_search, capsys):
    assert (
        main(["status", "--storage", small_search.url, "--study", small_search.study, "--json"])
        == 0
    )
    row = json.loads(capsys.readouterr().out)[0]
    assert row["best_config"]["epochs"] == 2 and row["best_config"]["optimizer"] in ("adam", "sgd")
