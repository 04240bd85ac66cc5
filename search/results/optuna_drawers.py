"""Optuna's views as the report draws them: a title and a drawing function per view, in
`report_data.OPTUNA_VIEWS`; `search.results.figures.optuna_view` tidies and notes what they give.
The views of PER_PARAM_VIEWS draw a panel, an axis or a bar per parameter, and take `params`: the
ones to draw (None: all)."""

from __future__ import annotations

from collections.abc import Callable

import optuna
import plotly.graph_objects as go

from search.results.axes import VAL_TOP1
from search.results.timeline import timeline_with_stopped_trials

PER_PARAM_VIEWS = ("slice", "parallel", "importance", "fanova")
Params = list[str] | None


def _importances(study: optuna.Study, params: Params = None) -> go.Figure:
    return optuna.visualization.plot_param_importances(study, params=params, target_name=VAL_TOP1)


def _fanova(study: optuna.Study, params: Params = None) -> go.Figure:
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return optuna.visualization.plot_param_importances(
        study, evaluator=evaluator, params=params, target_name=VAL_TOP1
    )


def _slice(study: optuna.Study, params: Params = None) -> go.Figure:
    return optuna.visualization.plot_slice(study, params=params, target_name=VAL_TOP1)


def _parallel(study: optuna.Study, params: Params = None) -> go.Figure:
    return optuna.visualization.plot_parallel_coordinate(study, params=params, target_name=VAL_TOP1)


OPTUNA_DRAWERS: dict[str, tuple[str, Callable[..., go.Figure]]] = {
    "history": (
        "Optimization history",
        lambda study: optuna.visualization.plot_optimization_history(study, target_name=VAL_TOP1),
    ),
    "importance": ("Parameter importances (PED-ANOVA, Optuna's default)", _importances),
    "fanova": ("Parameter importances (fANOVA)", _fanova),
    "slice": ("Slice", _slice),
    "contour_lr_eps": (
        "Contour: lr against eps",
        lambda study: optuna.visualization.plot_contour(
            study, params=["lr", "eps"], target_name=VAL_TOP1
        ),
    ),
    "contour_lr_momentum": (
        "Contour: lr against momentum",
        lambda study: optuna.visualization.plot_contour(
            study, params=["lr", "momentum"], target_name=VAL_TOP1
        ),
    ),
    "parallel": ("Parallel coordinates", _parallel),
    "intermediate": (
        "Intermediate values (val top-1 per epoch)",
        optuna.visualization.plot_intermediate_values,
    ),
    "timeline": ("Timeline", timeline_with_stopped_trials),
}
