"""Studies another tool made, holding under hpsearch's attribute names values of other shapes
(`seconds` as text, `epochs_run` as None, a fail reason as a number, a list where a trial number
belongs), a parameter sampled on a log scale by some trials and from 0 by others, and studies
whose names make the same slug: the report, the trials table and the Python API read them
without a traceback and show what is stored."""

from __future__ import annotations

import csv
import io

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

import search
from search.results import figures
from search.results.report_data import get_summary_info, trial_curves
from tests.helpers.cli import run_cli

SPACE = {
    "optimizer": CategoricalDistribution(("sgd", "adam")),
    "lr": FloatDistribution(1e-3, 1.0, log=True),
}


def add_trial(study: optuna.Study, number: int, user_attrs: dict, **made) -> None:
    study.add_trial(
        create_trial(
            state=made.pop("state", TrialState.COMPLETE),
            value=made.pop("value", 0.1 * (number + 1)),
            params={"optimizer": "sgd", "lr": 0.01 * (number + 1)},
            distributions=SPACE,
            intermediate_values={1: 0.05 * (number + 1), 2: 0.1 * (number + 1)},
            user_attrs=user_attrs,
        )
    )


@pytest.fixture
def odd(tmp_path) -> str:
    """Trial 0 as hpsearch records one; trials 1-3 with other shapes under the same names."""
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    study = optuna.create_study(study_name="odd", storage=url, direction="maximize")
    add_trial(study, 0, {"seconds": 10.0, "epochs_run": 2, "config": {"epochs": 4, "lr": 0.01}})
    add_trial(study, 1, {"seconds": "12 s", "epochs_run": None})
    add_trial(study, 2, {"seconds": None, "config": {"epochs": "ten", "lr": 0.03}})
    add_trial(study, 3, {"fail_reason": 42}, state=TrialState.FAIL, value=None)
    return url


def test_the_report_reads_numbers_only_where_numbers_are_stored(odd, capsys):
    status, out, err = run_cli(capsys, "report", "--study", "odd", "-o", "r.html", "--storage", odd)

    assert status == 0, err
    assert "Traceback" not in out + err
    summary = get_summary_info(search.open_study("odd", storage=odd))
    assert summary.compute_seconds == 10.0  # trial 0's; the others record no number of seconds
    # Planned: 4 (trial 0's config), 2 each for the rest (what they reported); trial 3 failed
    assert summary.epochs_without_pruning == 4 + 2 + 2 + 2
    assert [(row.number, row.epochs_run, row.seconds) for row in summary.top] == [
        (2, 2, None),  # not recorded, which 0.0 would misstate
        (1, 2, None),
        (0, 2, 10.0),
    ]


def test_a_fail_reason_that_is_no_text_costs_no_figure(odd):
    views = search.report_figures("odd", storage=odd)

    assert {"factor-lr-curves", "factor-lr-effect"} <= set(views)
    failed = views["factor-lr-curves"].data[3]
    assert failed.text[-1].endswith("<br>42")  # the reason, in the hover of where it stopped
    assert trial_curves([search.open_study("odd", storage=odd)])[3].fail_reason == "42"


def test_the_trials_table_reads_a_list_where_a_trial_number_belongs(odd, capsys):
    study = search.open_study("odd", storage=odd)
    add_trial(study, 4, {"retried_from": [3]}, state=TrialState.FAIL, value=None)

    status, out, err = run_cli(capsys, "trials", "--study", "odd", "--storage", odd)

    assert status == 0, err
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [(row["state"], row["seconds"], row["fail_reason"]) for row in rows] == [
        ("complete", "10.0", ""),
        ("complete", "12 s", ""),
        ("complete", "", ""),
        ("fail", "", "42"),  # no trial number continues it: failed, not stopped
        ("fail", "", ""),
    ]
    assert rows[4]["continues"] == "[3]"  # as stored


@pytest.mark.parametrize("command", ["status", "report"])
def test_status_and_report_read_a_list_or_text_where_a_number_of_hpsearch_s_belongs(
    odd, capsys, command
):
    study = search.open_study("odd", storage=odd)
    add_trial(study, 4, {"retried_from": [3], "retry_of": "3"}, state=TrialState.FAIL, value=None)
    add_trial(study, 5, {"promotion_of": [1], "resumed_from_epoch": "1"}, state=TrialState.PRUNED)
    study_flag = [] if command == "status" else ["--study", "odd", "-o", "r.html"]

    status, out, err = run_cli(capsys, command, *study_flag, "--storage", odd)

    assert (status, "Traceback" in out + err) == (0, False), err
    if command == "status":  # no trial number continues 3: failed, not stopped; 6 trials count
        [row] = [line.split() for line in out.splitlines() if line.startswith("odd ")]
        assert row[1:8] == ["6/?", "3", "1", "0", "0", "2", "0"], out


def test_a_log_axis_over_a_space_that_reaches_zero_still_shows_every_point():
    """Optuna draws lr on a log axis since one trial sampled it so; another sampled it from
    0..1. The axis's range was that space's, 0..1, read by Plotly as 10^0..10^1 on a log axis."""
    study = optuna.create_study(direction="maximize")
    for value, lr, space in ((0.5, 0.001, (1e-4, 1.0, True)), (0.6, 0.5, (0.0, 1.0, False))):
        low, high, log = space
        study.add_trial(
            create_trial(
                value=value,
                params={"lr": lr},
                distributions={"lr": FloatDistribution(low, high, log=log)},
            )
        )

    axis = figures.optuna_view(study, "slice").figure.layout.xaxis

    assert axis.type == "log"
    if axis.range is not None:  # in log10 units: each trial's lr lies within it
        low, high = axis.range
        assert low < -3 and high > -0.31, axis.range


def test_studies_whose_names_make_the_same_slug_keep_each_its_own_figures(tmp_path):
    url = f"sqlite:///{tmp_path / 'twins.db'}"
    # The last two have no Latin letter to make a slug of
    names = ["exp 1", "exp-1", "実験", "試験"]
    best = {}
    for scale, name in enumerate(names, start=1):
        study = optuna.create_study(study_name=name, storage=url, direction="maximize")
        # val top-1 in a band of its own: 0.2-0.4, 0.4-0.6, ...
        study.optimize(lambda trial, s=scale: s / 5 + trial.suggest_float("x", 0, 0.2), n_trials=3)
        best[name] = study.best_value

    views = search.report_figures(names, storage=url)

    histories = [views[key] for key in views if key.endswith("-history")]
    assert sorted(max(view.data[0].y) for view in histories) == sorted(best.values())
