"""The factor figures say what a reader comparing factors reads off them: a trial being promoted
stays in sight, an optimizer has one colour on the whole page and is named wherever it is the
only one, and the marks on the edges of val top-1 (a ✕ at 0%, a point at 100%) are drawn whole.
"""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from search import attrs
from search.results import figures
from search.results.figures import STOP_SYMBOLS
from search.results.report_data import get_factor_info, trial_curves
from search.results.report_views import draw_views

SPACE = {
    "optimizer": CategoricalDistribution(("sgd", "adam", "ranger")),
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "eps": FloatDistribution(1e-9, 1e-3, log=True),
    "momentum": FloatDistribution(0.0, 0.99),
}


def made(state: TrialState, params: dict, curve: dict[int, float], **more) -> FrozenTrial:
    """A trial as a worker records it: its config, a val top-1 per epoch."""
    config = {"epochs": 4, "eps": None, "momentum": None, **params}
    return create_trial(
        state=state,
        value=max(curve.values()) if state == TrialState.COMPLETE else None,
        params=params,
        distributions={name: SPACE[name] for name in params},
        intermediate_values=curve,
        user_attrs={attrs.CONFIG: config, **more},
    )


@pytest.fixture
def study(tmp_path) -> optuna.Study:
    return optuna.create_study(
        study_name="truth", storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize"
    )


ADAM = {"optimizer": "adam", "lr": 1e-3, "eps": 1e-8}


def start_continuation(study: optuna.Study, paused: int) -> optuna.Trial:
    """asha's continuation of the paused trial, claimed by a worker and one epoch on."""
    running = study.ask()
    for key, value in {
        attrs.CONFIG: {"epochs": 4, **ADAM},
        attrs.PROMOTION_OF: paused,
        attrs.RETRIED_FROM: paused,
        attrs.RETRY_OF: paused,
        attrs.CONTINUES_FROM_EPOCH: 1,
        attrs.RESUMED_FROM_EPOCH: 1,
    }.items():
        running.set_user_attr(key, value)
    running.report(0.3, 1)
    running.report(0.45, 2)
    return running


def test_a_promoted_trial_stays_drawn_while_its_continuation_trains(study):
    study.add_trial(made(TrialState.PRUNED, ADAM, {1: 0.3}, **{attrs.PAUSED_AT: 1}))
    running = start_continuation(study, paused=0)
    (curve,) = trial_curves([study])
    assert (curve.number, curve.state, curve.epochs) == (0, "promoted", (1,))
    figure = figures.factor_curves_figure(get_factor_info([curve], "optimizer"))
    assert figure.data[0].marker.symbol[-1] == STOP_SYMBOLS["promoted"]
    assert "promoted and training on" in figure.layout.title.text

    study.tell(running, 0.5)  # once it finishes, the continuation alone is the trial's line
    (curve,) = trial_curves([study])
    assert (curve.number, curve.state, curve.epochs) == (1, "complete", (1, 2))


def three_optimizers(study: optuna.Study) -> None:
    study.add_trial(
        made(TrialState.COMPLETE, {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9}, {1: 0.6})
    )
    study.add_trial(
        made(TrialState.COMPLETE, {"optimizer": "sgd", "lr": 1.0, "momentum": 0.0}, {1: 1.0})
    )
    study.add_trial(made(TrialState.COMPLETE, ADAM, {1: 0.5}))
    study.add_trial(
        made(TrialState.COMPLETE, {"optimizer": "ranger", "lr": 8e-3, "eps": 1e-6}, {1: 0.7})
    )
    study.add_trial(made(TrialState.FAIL, {"optimizer": "sgd", "lr": 0.9, "momentum": 0.5}, {}))


def figures_by_key(study: optuna.Study) -> dict:
    return {figure.key: figure.figure for figure in draw_views([study]).figures}


def test_an_optimizer_has_one_colour_in_every_factor_figure_and_is_named(study):
    three_optimizers(study)
    figures = figures_by_key(study)
    # The optimizer figure's colours: its legend's, one per optimizer
    colours = {
        trace.name: trace.line.color
        for trace in figures["factor-optimizer-curves"].data
        if trace.showlegend
    }
    assert sorted(colours) == ["adam", "ranger", "sgd"] and len(set(colours.values())) == 3
    for factor, shown in (("lr", {"adam", "ranger", "sgd"}), ("eps", {"adam", "ranger"})):
        scatter = figures[f"factor-{factor}-effect"].data
        assert {trace.name: trace.marker.color for trace in scatter} == {
            name: colours[name] for name in shown
        }
    # Momentum is SGD's alone: its points are SGD's colour, and the legend says whose they are
    momentum = figures["factor-momentum-effect"]
    (sgd,) = momentum.data
    assert (sgd.name, sgd.marker.color, sgd.showlegend) == ("sgd", colours["sgd"], True)
    assert momentum.layout.legend.title.text == "optimizer"
    boxes = figures["factor-optimizer-effect"].data
    assert {box.name: box.marker.color for box in boxes} == colours


def test_marks_on_the_edges_of_val_top1_are_drawn_whole(study):
    three_optimizers(study)
    figures = figures_by_key(study)
    failed = [
        trace for trace in figures["factor-lr-curves"].data if trace.meta["trial"] == 4
    ]  # failed before its first score: a ✕ at 0%
    assert failed[0].y == (0.0,) and failed[0].cliponaxis is False
    at_100 = [trace for trace in figures["factor-lr-effect"].data if 100.0 in trace.y]
    assert at_100 and all(trace.cliponaxis is False for trace in at_100)


def test_an_effect_figure_without_a_complete_trial_reads_0_to_100_percent(study):
    study.add_trial(made(TrialState.FAIL, ADAM, {1: 0.2}))
    effect = figures.factor_effect_figure(get_factor_info(trial_curves([study]), "lr"))
    assert list(effect.layout.yaxis.range) == [0, 100]
    assert "no complete trial" in effect.layout.annotations[0].text


def test_a_level_is_shown_in_the_legend_by_a_plain_line_not_a_failed_trials_cross(study):
    # SGD's first trial failed before its first score: its trace is a lone ✕ at 0%, and Plotly
    # draws a legend entry with its trace's first marker
    levels_whose_first_trial_stopped_at_once(study)
    curves = figures_by_key(study)["factor-optimizer-curves"]
    named = {trace.name: trace for trace in curves.data if trace.showlegend}
    assert sorted(named) == ["adam", "sgd"]
    assert all(trace.marker.symbol[0] == "circle" for trace in named.values())


def levels_whose_first_trial_stopped_at_once(study: optuna.Study) -> None:
    study.add_trial(made(TrialState.FAIL, {"optimizer": "sgd", "lr": 0.9, "momentum": 0.5}, {}))
    study.add_trial(made(TrialState.PRUNED, ADAM, {1: 0.12}))  # paused at its first epoch
    study.add_trial(made(TrialState.COMPLETE, {"optimizer": "sgd", "lr": 0.1}, {1: 0.3, 2: 0.6}))
    study.add_trial(made(TrialState.COMPLETE, ADAM, {1: 0.4, 2: 0.6}))
