"""Optuna's views in the report, read as a newcomer reads them: val top-1 in percent as in the
factor figures, each view saying how many trials it rests on, and the views that model the trials
(importances, contours) held back, named with the reason, until there are trials enough."""

from __future__ import annotations

import re
from datetime import timedelta

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from search import attrs
from search.cli import main
from search.results import figures
from search.results.page import build_report
from search.results.report_data import (
    CONTOUR_PARAMS,
    MIN_COMPLETE_FOR_CONTOUR,
    MIN_COMPLETE_FOR_IMPORTANCE,
    OPTUNA_VIEWS,
    SETTLED_IMPORTANCE,
    get_summary_info,
)
from tests.helpers.made_trials import START, made_study


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('views') / 'views.db'}"


@pytest.fixture(scope="module")
def made(url) -> dict[int, optuna.Study]:
    """A first search's worth of trials, and a long search's."""
    return {size: made_study(url, f"made-{size}", size, seed=size) for size in (6, 60)}


def complete(study: optuna.Study, *params: str) -> int:
    return sum(
        1
        for trial in study.get_trials(states=(TrialState.COMPLETE,))
        if all(name in trial.params for name in params)
    )


def test_optunas_views_read_val_top1_in_percent(made):
    study = made[60]
    history = figures.optuna_view(study, "history").figure
    assert history.layout.yaxis.tickformat == "~%" and history.layout.yaxis.hoverformat == ".2%"
    intermediate = figures.optuna_view(study, "intermediate").figure
    assert intermediate.layout.yaxis.tickformat == "~%"
    slice_view = figures.optuna_view(study, "slice").figure
    slice_y = [slice_view.layout[name] for name in slice_view.layout if name.startswith("yaxis")]
    assert len(slice_y) == 4 and all(axis.tickformat == "~%" for axis in slice_y)
    contour = figures.optuna_view(study, "contour_lr_eps").figure
    assert contour.data[0].colorbar.tickformat == "~%"
    # Parallel coordinates label their val top-1 column with text: read back as percent
    parallel = figures.optuna_view(study, "parallel").figure
    column = list(parallel.layout.xaxis.ticktext).index("val top-1")
    labels = [note.text for note in parallel.layout.annotations if note.x == column]
    assert labels and all(re.fullmatch(r"\d+(\.\d+)?%", label) for label in labels), labels
    values = [trace.customdata[column][1] for trace in parallel.data if trace.customdata]
    assert all(value.endswith("%") and float(value[:-1]) > 1 for value in values)


def test_each_view_says_how_many_trials_it_rests_on(made):
    study = made[60]
    ran = len(study.trials)
    assert figures.optuna_view(study, "history").basis == (
        f"Rests on {complete(study)} of the study's {ran} trials: the complete ones."
    )
    reported = sum(1 for trial in study.trials if trial.intermediate_values)
    assert figures.optuna_view(study, "intermediate").basis.startswith(
        f"Rests on {reported} of the study's {ran} trials: those that reported an epoch"
    )
    assert figures.optuna_view(study, "timeline").basis == (
        f"Rests on every trial of the study: {ran}."
    )
    importance = figures.optuna_view(study, "importance")
    assert isinstance(importance, figures.Figure)
    rough = complete(study) < SETTLED_IMPORTANCE
    assert ("Importances are rough below 50" in importance.basis) == rough


@pytest.mark.parametrize("size", [6, 60])
def test_importances_and_contours_are_held_back_below_their_minimum(made, size):
    study = made[size]
    importance = figures.optuna_view(study, "importance")
    drawn = complete(study) >= MIN_COMPLETE_FOR_IMPORTANCE
    assert isinstance(importance, figures.Figure) == drawn
    if not drawn:
        assert importance.reason == (
            f"importances need at least {MIN_COMPLETE_FOR_IMPORTANCE} complete trials to mean "
            f"anything, but the study has {complete(study)}"
        )
    for view, params in CONTOUR_PARAMS.items():
        contour = figures.optuna_view(study, view)
        sampled = complete(study, *params)
        assert isinstance(contour, figures.Figure) == (sampled >= MIN_COMPLETE_FOR_CONTOUR)
        if isinstance(contour, figures.Note):
            assert f"at least {MIN_COMPLETE_FOR_CONTOUR} complete trials" in contour.reason
            assert f"the study has {sampled}" in contour.reason


def test_a_first_search_holds_back_what_cannot_mean_anything_yet(made):
    study = made[6]
    assert 2 <= complete(study) < MIN_COMPLETE_FOR_CONTOUR, "the made study changed"
    held = {
        view for view in OPTUNA_VIEWS if isinstance(figures.optuna_view(study, view), figures.Note)
    }
    assert {"importance", "contour_lr_eps", "contour_lr_momentum"} <= held
    assert {"history", "slice", "intermediate", "timeline"}.isdisjoint(held)


def test_the_page_puts_the_basis_under_each_view_and_names_one_study_as_such(made):
    report = build_report([made[60]])
    optuna_figures = [figure for figure in report.figures if figure.basis]
    assert len(optuna_figures) == len(OPTUNA_VIEWS) - len(report.notes)
    assert report.html.count('<p class="basis">Rests on ') == len(optuna_figures)
    assert "<p>Study <code>made-60</code>" in report.html
    both = build_report([made[6], made[60]]).html
    assert "<p>Studies <code>made-6</code>, <code>made-60</code>" in both


def test_the_command_names_each_view_not_drawn_and_why(made, url, tmp_path, capsys):
    page = tmp_path / "report.html"
    argv = ["report", "--storage", url, "--study", "made-6", "-o", str(page)]
    assert main([*argv, "--artifacts", str(tmp_path / "art")]) == 0
    first, *rest = capsys.readouterr().out.strip().splitlines()
    said = re.fullmatch(r"wrote .*: \d+ figures drawn, (\d+) views? not drawn:", first)
    assert said and int(said.group(1)) == len(rest) > 0
    importance = "  Parameter importances (PED-ANOVA, Optuna's default) of study made-6: "
    assert f"{importance}importances need at least {MIN_COMPLETE_FOR_IMPORTANCE}" in rest[0]
    assert any(line.startswith("  Contour: lr against eps of study made-6: ") for line in rest)
    # The report's copy for the dashboard opens in a browser: it is an .html file
    copies = list((tmp_path / "art").iterdir())
    assert len(copies) == 1 and copies[0].suffix == ".html"
    assert copies[0].read_text() == page.read_text()


def test_the_timeline_rests_on_the_trials_that_ran_with_paused_ones_apart(url):
    """asha: a paused trial's continuation that was closed, or waits, never trained; the
    timeline, its caption and the summary leave it out alike, and draw a paused trial apart
    from one the pruner stopped."""

    def bar(number: int, state: TrialState, **user_attrs) -> optuna.trial.FrozenTrial:
        made = create_trial(
            state=state,
            value=0.5 if state == TrialState.COMPLETE else None,
            intermediate_values={} if state == TrialState.WAITING else {1: 0.3},
            user_attrs=user_attrs,
        )
        if state != TrialState.WAITING:
            made.datetime_start = START + timedelta(minutes=number)
            made.datetime_complete = made.datetime_start + timedelta(seconds=30)
        return made

    def continuing(paused: int) -> dict:
        return {attrs.PROMOTION_OF: paused, attrs.RETRY_OF: paused, attrs.RETRIED_FROM: paused}

    study = optuna.create_study(study_name="asha-timeline", storage=url, direction="maximize")
    for made in (
        bar(0, TrialState.COMPLETE),
        bar(1, TrialState.PRUNED, **{attrs.PAUSED_AT: 1}),  # then promoted: trial 2 continues it
        bar(2, TrialState.COMPLETE, **continuing(1)),
        bar(3, TrialState.PRUNED, **{attrs.PAUSED_AT: 1}),  # its continuation closed: paused
        bar(4, TrialState.PRUNED, **continuing(3), **{attrs.PROMOTION_CLOSED: "cannot rank"}),
        bar(5, TrialState.PRUNED, **{attrs.PAUSED_AT: 1}),  # its continuation waits: paused
        bar(6, TrialState.WAITING, **continuing(5)),
        bar(7, TrialState.PRUNED),  # stopped by the pruner for good
    ):
        study.add_trial(made)

    view = figures.optuna_view(study, "timeline")

    bars = {trace.name: tuple(trace.y) for trace in view.figure.data}
    assert bars == {
        "COMPLETE": (0, 2),
        "PRUNED": (7,),
        "PAUSED (asha)": (3, 5),
        "PROMOTED (asha)": (1,),
    }, "no bar for continuations 4 and 6, which never ran"
    assert view.basis == f"Rests on every trial of the study: {sum(map(len, bars.values()))}."
    counts = get_summary_info(study).counts
    assert (counts["pruned"], counts["paused"], counts["promoted"]) == (1, 2, 1)
