"""The report's figures: how each factor moves val top-1, and Optuna's own views of a study.

Drawn from `search.results.report_data`'s collected data. Every piece of user text (study,
parameter and class names, fail reasons) is escaped before it reaches a figure's labels, since
Plotly reads labels as a small subset of HTML.
"""

from __future__ import annotations

import html
import math
import re
import warnings
from functools import partial
from typing import Any, NamedTuple

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState
from plotly.colors import qualitative, sample_colorscale

from search.attrs import settings_text
from search.results.axes import VAL_TOP1, log_ticks, padded, tidy_optuna_view
from search.results.one_value import parallel_params, single_values, varied_params
from search.results.optuna_drawers import OPTUNA_DRAWERS, PER_PARAM_VIEWS
from search.results.report_data import FactorInfo, TrialCurve, view_obstacle
from search.results.view_basis import view_basis

CATEGORY_COLOURS = qualitative.Plotly
SCALE_COLOURS = "Viridis"
# Another tool's trial may set lr with no optimizer, or one that is no name: its points are grey
UNSET_OPTIMIZER = "no optimizer named"
UNSET_COLOUR = "#7f7f7f"
# Where a trial stopped: a pruned trial ends in a downward triangle, a failed one in a cross.
# A paused trial (asha) that was never promoted ends in an open circle: it could have gone on.
# A promoted one, whose continuation has not finished, in a right triangle: it goes on.
# A stopped one (a signal, a dead worker), whose retry has not finished, in an open square.
STOP_SYMBOLS = {
    "pruned": "triangle-down",
    "paused": "circle-open",
    "promoted": "triangle-right",
    "stopped": "square-open",
    "fail": "x",
}
# The factor figures show val top-1 in percent, so Plotly's own tick labels carry as many decimals
# as the zoom needs (a fixed ".0%" read 14% 14% 14% for curves within a point of each other).
PERCENT = 100.0
VAL_TOP1_AXIS = {
    "title_text": VAL_TOP1,
    "ticksuffix": "%",
    "autorangeoptions": {"clipmin": 0, "clipmax": PERCENT},
}
FACTOR_TITLES = {
    "optimizer": "optimizer",
    "lr": "learning rate",
    "eps": "eps",
    "momentum": "momentum",
    "model": "model",
}


class Figure(NamedTuple):
    key: str  # unique in one report; names its PNG file
    title: str  # plain text; escaped where it is shown
    figure: go.Figure
    cautions: tuple[str, ...] = ()  # what Optuna warned while drawing it (too few trials, say)
    basis: str = ""  # how many trials an Optuna view rests on, plain text


class Note(NamedTuple):
    title: str
    reason: str  # why the view is missing, plain text
    study: str = ""  # whose view it is; "" for a factor of all the studies


def escaped(text: Any) -> str:
    return html.escape(str(text), quote=True)


# --- the factor figures ---


def factor_curves_figure(info: FactorInfo) -> go.Figure:
    """Val top-1 per epoch, one line per trial, coloured by the factor's value."""
    traces = []
    carriers = _legend_carriers(info) if info.scale == "categorical" else set()
    for index, (curve, colour) in enumerate(zip(info.curves, _curve_colours(info))):
        value = curve.factors[info.factor]
        trace = _curve_trace(curve, colour)
        if info.scale == "categorical":
            trace.update(
                name=escaped(value), legendgroup=escaped(value), showlegend=index in carriers
            )
        else:  # markers carry the scale, so a colour bar explains the colours of all the lines
            trace["marker"].update(
                color=[_scaled(info, value)] * len(trace["x"]),
                showscale=index == 0,
                **_colour_scale(info),
            )
        traces.append(trace)
    # The traces as data, checked by Plotly once: a Scatter made and added a trial at a time took
    # a minute for the lr and eps figures of a study of 3000 trials
    figure = go.Figure(data=traces)
    name = FACTOR_TITLES[info.factor]
    figure.update_layout(
        title=f"{name.capitalize()}: {VAL_TOP1} per epoch, one line per trial"
        # Two lines: one is wider than a page's figure, and Plotly cuts a title, never wraps it
        "<br><sup>▼ pruned, ○ paused and never promoted, ▶ promoted and training on, □ stopped to "
        "resume, ✕ failed where the trial stopped</sup><br><sup>(✕ at 0: failed before its first "
        "val score); a promoted or resumed trial is one line</sup>",
        xaxis_title="epoch",
        legend_title_text=name,
        legend_itemsizing="constant",  # not a trial's end mark, 12 px, for its level
        hovermode="closest",
        margin={"t": 105},
    )
    figure.update_xaxes(dtick=1 if _max_epoch(info.curves) <= 20 else None)
    figure.update_yaxes(VAL_TOP1_AXIS)
    return figure


def _legend_carriers(info: FactorInfo) -> set[int]:
    """The curve that names each level in the legend. Plotly draws the entry with its trace's
    first marker, so a trial whose one mark is where it stopped (a ✕ at 0) would show its level
    as failed: the first curve that begins with a plain point carries it, else the level's first."""
    carriers: dict[Any, int] = {}
    for index, curve in enumerate(info.curves):
        level = curve.factors[info.factor]
        first = carriers.get(level)
        if first is None or (_plain_start(curve) and not _plain_start(info.curves[first])):
            carriers[level] = index
    return set(carriers.values())


def _plain_start(curve: TrialCurve) -> bool:
    return len(curve.epochs) > 1 or curve.state not in STOP_SYMBOLS


def _curve_trace(curve: TrialCurve, colour: str) -> dict[str, Any]:
    epochs, top1 = list(curve.epochs), list(curve.val_top1)
    if not epochs:  # a trial that failed in its first epoch has no val score to draw
        epochs, top1 = [1], [0.0]
    symbols = ["circle"] * len(epochs)
    sizes = [5] * len(epochs)
    if curve.state in STOP_SYMBOLS:
        symbols[-1], sizes[-1] = STOP_SYMBOLS[curve.state], 12
    label = _trial_label(curve)
    return {
        "type": "scatter",
        "x": epochs,
        "y": [PERCENT * value for value in top1],
        "mode": "lines+markers",
        # A ✕ at 0% (failed before its first score) or a point at 100% lies on the axis's edge:
        # clipped, half of it showed
        "cliponaxis": False,
        "line": {"color": colour, "width": 1.5},
        "marker": {"symbol": symbols, "size": sizes, "color": colour},
        "text": [label] * len(epochs),
        "hovertemplate": "%{text}<br>epoch %{x}: %{y:.2f}%<extra></extra>",
        "showlegend": False,
        "meta": {"study": curve.study, "trial": curve.number},
    }


def _trial_label(curve: TrialCurve) -> str:
    """Hover text: each line escaped on its own, so only our <br> tags reach Plotly."""
    lines = [f"{curve.study} trial {curve.number} ({curve.state})", settings_text(curve.factors)]
    if curve.fail_reason:
        lines.append(_shorten(curve.fail_reason, 100))
    return "<br>".join(escaped(line) for line in lines)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _max_epoch(curves: tuple[TrialCurve, ...]) -> int:
    return max((max(curve.epochs) for curve in curves if curve.epochs), default=1)


def _curve_colours(info: FactorInfo) -> list[str]:
    """Each curve's colour: its level's, or its value's on the scale (sampled in one call: each
    call parses the scale again, a few milliseconds)."""
    values = [curve.factors[info.factor] for curve in info.curves]
    if info.scale == "categorical":
        colours = level_colours(info.levels)
        return [colours[value] for value in values]
    low, high = _colour_range(info)
    positions = [
        0.5 if high == low else (_scaled(info, value) - low) / (high - low) for value in values
    ]
    return sample_colorscale(SCALE_COLOURS, positions) if positions else []


def level_colours(levels: tuple[Any, ...]) -> dict[Any, str]:
    """Each level's colour, by its place among the sorted levels: the optimizer's levels over all
    the curves give an optimizer one colour in every figure of a report."""
    return {
        level: CATEGORY_COLOURS[index % len(CATEGORY_COLOURS)] for index, level in enumerate(levels)
    }


def _scaled(info: FactorInfo, value: float) -> float:
    # A log colour scale needs a positive value; momentum 0 is common, so it is linear.
    return math.log10(value) if info.scale == "log" else float(value)


def _colour_range(info: FactorInfo) -> tuple[float, float]:
    """The space's span, so one trial's colour says where in the space it lies."""
    low, high = _bounds(info)
    return _scaled(info, low), _scaled(info, high)


def _bounds(info: FactorInfo) -> tuple[float, float]:
    if info.bounds is None:
        raise ValueError(f"{info.factor} is {info.scale}: only a number's figure has bounds")
    return info.bounds


def _colour_scale(info: FactorInfo) -> dict[str, Any]:
    low, high = _colour_range(info)
    bar: dict[str, Any] = {"title": {"text": FACTOR_TITLES[info.factor]}}
    if info.scale == "log":  # the markers carry log10(value): place the labels there
        ticks = log_ticks(*_bounds(info))
        bar.update(tickvals=[math.log10(tick) for tick in ticks["tickvals"]])
        bar.update(ticktext=ticks["ticktext"])
    return {
        "colorscale": SCALE_COLOURS,
        "cmin": low if high > low else low - 0.5,
        "cmax": high if high > low else low + 0.5,
        "colorbar": bar,
    }


def factor_effect_figure(info: FactorInfo) -> go.Figure:
    """Each complete trial's value against the factor: by level, or by value (log axis: lr, eps)."""
    complete = [curve for curve in info.curves if curve.state == "complete"]
    figure = go.Figure()
    name = FACTOR_TITLES[info.factor]
    if info.scale == "categorical":
        colours = level_colours(info.levels)
        for level in info.levels:
            at_level = [curve for curve in complete if curve.factors[info.factor] == level]
            labels = [_trial_label(curve) for curve in at_level]
            figure.add_trace(
                go.Box(
                    y=[_percent(curve) for curve in at_level],
                    name=escaped(level),
                    marker_color=colours[level],  # as its curves, not by Plotly's trace order
                    boxpoints="all",
                    jitter=0.4,
                    pointpos=0,
                    text=labels,
                    hovertemplate="%{text}<br>%{y:.2f}%<extra></extra>",
                )
            )
    else:
        _add_effect_scatter(figure, complete, info)
        figure.update_xaxes(_factor_axis(info), title_text=name)
        figure.update_layout(legend_title_text=FACTOR_TITLES["optimizer"])
    figure.update_layout(
        title=f"{name.capitalize()}: effect on {VAL_TOP1} (complete trials, best epoch)",
    )
    figure.update_yaxes(VAL_TOP1_AXIS)
    if not complete:
        # With no point to fit, Plotly's own range would read -1% to 4%
        figure.update_yaxes(range=[0, PERCENT])
        figure.add_annotation(
            text=f"no complete trial sets {escaped(name)}",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
        )
    return figure


def _percent(curve: TrialCurve) -> float:
    if curve.value is None:
        raise ValueError(f"trial {curve.number} is {curve.state}: only a complete one has a value")
    return PERCENT * curve.value


def _factor_axis(info: FactorInfo) -> dict[str, Any]:
    """The factor's whole space, so one or three trials show where they lie within it."""
    log = info.scale == "log"
    axis: dict[str, Any] = {
        "type": "log" if log else "linear",
        "range": padded(*_bounds(info), log=log),
    }
    return {**axis, **log_ticks(*_bounds(info))} if log else axis


def _add_effect_scatter(figure: go.Figure, complete: list[TrialCurve], info: FactorInfo) -> None:
    """A trace per optimizer, in its colour on the whole page, named in the legend even when it
    is the only one here (momentum: SGD's alone), but not where every trial drawn had it: a legend
    of one optimizer reads as a comparison, and the page says once what the optimizer was."""
    colours = level_colours(info.optimizers)
    groups: dict[Any, list[TrialCurve]] = {optimizer: [] for optimizer in [*info.optimizers, None]}
    for curve in complete:
        optimizer = curve.factors.get("optimizer")
        groups[optimizer if optimizer in info.optimizers else None].append(curve)
    one_optimizer = len(info.optimizers) == 1 and not groups[None]
    for optimizer, group in groups.items():
        if not group:
            continue
        figure.add_trace(
            go.Scatter(
                x=[curve.factors[info.factor] for curve in group],
                y=[_percent(curve) for curve in group],
                mode="markers",
                name=escaped(UNSET_OPTIMIZER if optimizer is None else optimizer),
                showlegend=not one_optimizer,
                cliponaxis=False,  # a point at 100% drawn whole
                marker={"size": 9, "color": colours.get(optimizer, UNSET_COLOUR)},
                text=[_trial_label(curve) for curve in group],
                hovertemplate="%{text}<br>%{y:.2f}%<extra></extra>",
            )
        )


# --- Optuna's views ---


def optuna_view(study: optuna.Study, view: str, key: str = "") -> Figure | Note:
    """One of Optuna's views of the study, or a note saying why it cannot be drawn. Its figure's
    key is `KEY-VIEW` (`key`: the study's name as a slug unless given; see `study_keys`)."""
    title, draw = OPTUNA_DRAWERS[view]
    reason = view_obstacle(study, view)
    if reason is not None:
        return Note(title, reason, study.study_name)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    left_out: list[str] = []
    if view == "parallel":
        shared, left_out = parallel_params(complete)
        draw = partial(draw, params=shared)
    elif view in PER_PARAM_VIEWS and single_values(complete):  # one value is no finding
        draw = partial(draw, params=varied_params(complete))
    # Optuna's warnings about a small study belong beside the figure, not on the terminal.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            figure = draw(study)
        # A view that breaks on an unusual study costs one
        # figure, never the report: the note says why.
        except Exception as error:  # noqa: BLE001
            return Note(
                title,
                f"Optuna could not draw it: {type(error).__name__}: {error}",
                study.study_name,
            )
    cautions = tuple(
        dict.fromkeys(
            str(warning.message)
            for warning in caught
            if not issubclass(warning.category, optuna.exceptions.ExperimentalWarning)
        )
    )
    if left_out:  # drawn, the trials that lack one would read as its lowest value
        cautions += (
            f"Left out: {', '.join(left_out)}, which only some trials sample: this view would "
            "draw the others at a 'None' tick at the bottom of its axis, as its lowest value. "
            "The factor figures draw it over the trials that sample it.",
        )
    figure = tidy_optuna_view(figure, study, view)
    return Figure(
        f"{key or slug(study.study_name)}-{view}", title, figure, cautions, view_basis(study, view)
    )


def study_keys(names: list[str]) -> list[str]:
    """Each study's part of its figures' keys: its name as a slug, numbered where another name
    makes the same slug (`exp 1` and `exp-1`, or names in no Latin letters), since a figure's key
    is unique in a report and `report_figures` returns the figures by it."""
    keys: list[str] = []
    for name in names:
        base = key = slug(name)
        number = 2
        while key in keys:
            key, number = f"{base}-{number}", number + 1
        keys.append(key)
    return keys


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "study"
