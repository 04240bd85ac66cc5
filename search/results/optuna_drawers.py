"""Optuna's views as the report draws them: a title and a drawing function per view, in
`report_data.OPTUNA_VIEWS`; `search.results.figures.optuna_view` tidies and notes what they give."""

from __future__ import annotations

from collections.abc import Callable

import optuna
import plotly.graph_objects as go

from search.results.axes import VAL_TOP1
from search.results.timeline import timeline_with_stopped_trials


def _importances(
    evaluator: optuna.importance.BaseImportanceEvaluator | None,
) -> Callable[[optuna.Study], go.Figure]:
    return lambda study: optuna.visualization.plot_param_importances(
        study, evaluator=evaluator, target_name=VAL_TOP1
    )


def _fanova(study: optuna.Study) -> go.Figure:
    return _importances(optuna.importance.FanovaImportanceEvaluator(seed=0))(study)


OPTUNA_DRAWERS: dict[str, tuple[str, Callable[[optuna.Study], go.Figure]]] = {
    "history": (
        "Optimization history",
        lambda study: optuna.visualization.plot_optimization_history(study, target_name=VAL_TOP1),
    ),
    "importance": ("Parameter importances (PED-ANOVA, Optuna's default)", _importances(None)),
    "fanova": ("Parameter importances (fANOVA)", _fanova),
    "slice": ("Slice", lambda study: optuna.visualization.plot_slice(study, target_name=VAL_TOP1)),
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
    "parallel": (
        "Parallel coordinates",
        lambda study: optuna.visualization.plot_parallel_coordinate(study, target_name=VAL_TOP1),
    ),
    "intermediate": (
        "Intermediate values (val top-1 per epoch)",
        optuna.visualization.plot_intermediate_values,
    ),
    "timeline": ("Timeline", timeline_with_stopped_trials),
}
