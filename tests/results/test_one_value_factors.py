"""A factor the trials never varied is no finding: the report draws no figure of it (one vertical
line, a legend of one optimizer, a parallel axis of one value, an importance bar for it) and says
once what it was; a factor only some trials set (momentum: SGD's) is drawn over those trials, and a
study where nothing varied says so in place of figures."""

from __future__ import annotations

import re

import optuna
import plotly.graph_objects as go
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from search import attrs
from search.results import figures
from search.results.page import build_report
from search.results.report_data import MIN_COMPLETE_FOR_IMPORTANCE
from search.results.report_views import draw_views

LR = FloatDistribution(1e-4, 1.0, log=True)
SETTINGS = {"epochs": 2, "model": "resnet18", "eps": None, "momentum": None}


def made(
    config: dict, params: dict, value: float, distributions: dict | None = None
) -> FrozenTrial:
    """A complete trial as a worker records it: its whole config; `params` what Optuna sampled."""
    return create_trial(
        state=TrialState.COMPLETE,
        value=value,
        params=params,
        distributions=distributions or dict.fromkeys(params, LR),
        intermediate_values={1: value / 2, 2: value},
        user_attrs={attrs.CONFIG: {**SETTINGS, **config}},
    )


def study_of(*trials: FrozenTrial) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for trial in trials:
        study.add_trial(trial)
    return study


def factor_keys(study: optuna.Study) -> list[str]:
    return [figure.key for figure in draw_views([study]).figures if figure.key.startswith("factor")]


def drawn(study: optuna.Study, view: str) -> go.Figure:
    view_drawn = figures.optuna_view(study, view)
    assert isinstance(view_drawn, figures.Figure), view_drawn
    return view_drawn.figure


def sgd_at_fixed_momentum(trials: int) -> optuna.Study:
    """A space of one optimizer (sgd) and momentum fixed at 0.9: only lr is an Optuna parameter."""
    return study_of(
        *(
            made({"optimizer": "sgd", "lr": lr, "momentum": 0.9}, {"lr": lr}, 0.3 + lr / 10)
            for lr in (10.0 ** -(1 + index / 4) for index in range(trials))
        )
    )


def test_a_factor_the_space_fixed_is_left_out_and_said_once() -> None:
    study = sgd_at_fixed_momentum(3)
    assert factor_keys(study) == ["factor-lr-curves", "factor-lr-effect"]
    report = build_report([study])
    page = report.html
    for line in (
        "optimizer was sgd in every trial",
        "momentum was 0.9 in every trial",
        "model was resnet18 in every trial",
    ):
        assert page.count(line) == 1, line
        assert f'<p class="one-value">{line}: not drawn.</p>' in page
    assert not re.search(r'id="factor-(optimizer|momentum|model)"', page)
    # lr's effect colours its points by optimizer: a legend of the one optimizer there was reads
    # as a comparison
    effect = next(figure for figure in report.figures if figure.key == "factor-lr-effect").figure
    assert [trace.showlegend for trace in effect.data] == [False]
    # No factor is a note of its own either: only eps, which no trial sets, is one
    assert [note.title for note in report.notes if not note.study] == ["Eps"]


def test_a_sampled_parameter_of_one_value_is_left_out_of_optunas_views() -> None:
    # A points study whose queued trials all ran at momentum 0.9 and with sgd, though the space
    # spans other values: Optuna holds both as parameters
    space = {
        "optimizer": CategoricalDistribution(("sgd", "adam")),
        "lr": LR,
        "momentum": FloatDistribution(0.0, 0.9),
    }
    count = MIN_COMPLETE_FOR_IMPORTANCE + 1
    study = study_of(
        *(
            made(
                {"optimizer": "sgd", "lr": lr, "momentum": 0.9},
                {"optimizer": "sgd", "lr": lr, "momentum": 0.9},
                0.2 + lr / 2,
                space,
            )
            for lr in (10.0 ** -(index / 4) for index in range(count))
        )
    )
    parallel = drawn(study, "parallel")
    assert list(parallel.layout.xaxis.ticktext) == ["val top-1", "lr"]
    slice_view = drawn(study, "slice")
    assert [trace.x for trace in slice_view.data if trace.x] and not any(
        name.startswith("xaxis2") for name in slice_view.layout
    )
    # PED-ANOVA gave momentum, which never changed, a third of the importance
    (bars,) = drawn(study, "importance").data
    assert list(bars.y) == ["lr"]
    fanova = figures.optuna_view(study, "fanova")
    if isinstance(fanova, figures.Figure):  # else scikit-learn is not installed, and it says so
        assert list(fanova.figure.data[0].y) == ["lr"]
    contour = figures.optuna_view(study, "contour_lr_momentum")
    assert isinstance(contour, figures.Note)
    assert "momentum was 0.9 in every complete trial that samples lr and momentum" in contour.reason
    page = build_report([study]).html
    assert page.count("momentum was 0.9 in every complete trial") == 2  # once more: the contour
    assert "optimizer was sgd in every complete trial; momentum was 0.9" in page


def test_a_factor_only_some_trials_set_is_drawn_over_those_trials() -> None:
    study = study_of(
        made({"optimizer": "sgd", "lr": 0.1, "momentum": 0.9}, {"lr": 0.1}, 0.6),
        made({"optimizer": "sgd", "lr": 0.01, "momentum": 0.0}, {"lr": 0.01}, 0.4),
        made({"optimizer": "adam", "lr": 1e-3, "eps": 1e-8}, {"lr": 1e-3}, 0.5),
        made({"optimizer": "adam", "lr": 3e-3, "eps": 1e-8}, {"lr": 3e-3}, 0.55),
    )
    views = {figure.key: figure.figure for figure in draw_views([study]).figures}
    momentum = views["factor-momentum-curves"]
    assert sorted(trace.meta["trial"] for trace in momentum.data) == [0, 1]  # SGD's alone
    assert "factor-eps-curves" not in views and "factor-optimizer-curves" in views
    page = build_report([study]).html
    assert '<p class="one-value">eps was 1e-08 in every trial that sets it: not drawn.</p>' in page


def test_a_parameter_only_some_trials_sample_is_left_out_of_the_parallel_view() -> None:
    # Optuna put the Adam trials at a "None" tick at the bottom of SGD's momentum axis, where they
    # read as the lowest momentum
    optimizer = CategoricalDistribution(("sgd", "adam"))
    momentum = FloatDistribution(0.0, 0.99)
    sgd = {"optimizer": optimizer, "lr": LR, "momentum": momentum}
    adam = {"optimizer": optimizer, "lr": LR}
    study = study_of(
        made({"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
             {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9}, 0.6, sgd),
        made({"optimizer": "sgd", "lr": 0.01, "momentum": 0.5},
             {"optimizer": "sgd", "lr": 0.01, "momentum": 0.5}, 0.4, sgd),
        made({"optimizer": "adam", "lr": 1e-3}, {"optimizer": "adam", "lr": 1e-3}, 0.5, adam),
        made({"optimizer": "adam", "lr": 3e-3}, {"optimizer": "adam", "lr": 3e-3}, 0.55, adam),
    )  # fmt: skip

    view = figures.optuna_view(study, "parallel")
    assert isinstance(view, figures.Figure)
    assert "momentum" not in view.figure.layout.xaxis.ticktext
    assert {"lr", "optimizer"} <= set(view.figure.layout.xaxis.ticktext)
    assert any(
        caution.startswith("Left out: momentum, which only some") for caution in view.cautions
    )


def test_a_study_where_nothing_varied_says_so_in_place_of_figures() -> None:
    one = sgd_at_fixed_momentum(1)
    same = study_of(*(one.trials[0] for _ in range(3)))  # three runs of one configuration
    for study in (one, same):
        report = build_report([study])
        assert factor_keys(study) == []
        said = re.search(r'<p class="one-value nothing-varied">(.*?)</p>', report.html)
        assert said and said.group(1).startswith("Nothing varied among the trials: optimizer was")
        assert "learning rate was 0.1 in every trial" in said.group(1)
        # Optuna's views that draw a parameter: a note each, no axis of one value
        notes = {note.title: note.reason for note in report.notes}
        assert "no parameter takes more than one value" in notes["Slice"]
        assert "Parallel coordinates" in notes
