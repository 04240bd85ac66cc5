"""Axes and colour scales that stay legible with 1, 3 or 300 trials.

Plotly fits an axis to the data: one trial spreads a momentum of 0.07 over -0.5..1 and a val
top-1 over -50%..100%, and a fixed `.0%` tick format repeats `14%` when the curves lie within a
point. Here a factor's axis and colour scale span the space it was sampled from, val top-1 never
leaves 0..1 and reads in percent in every figure, trial numbers are ticked as whole numbers, and
tick labels are left to Plotly's own precision (which grows with the zoom) or written with enough
significant digits to differ.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import optuna
import plotly.colors
import plotly.graph_objects as go
from optuna.distributions import FloatDistribution, IntDistribution

PAD = 0.04  # of an axis's span on each side, so points on the space's edges are not cut in half
MANTISSAS = {1: (1, 2, 5), 2: (1, 2, 5), 3: (1, 3)}  # labelled per decade, by how many decades show
TRIAL_TICKS = 8  # at most about this many labelled trial numbers


def number_text(value: float) -> str:
    """Three significant digits; below 0.001 as a power of ten, unpadded: 0.0703, 0.001, 1e-4,
    6.06e-9 (one style along a log axis of eps, where 3g would give 0.0001 beside 1e-05)."""
    if value == 0 or abs(value) >= 1e-3:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def log_ticks(low: float, high: float) -> dict[str, Any]:
    """Tick values and labels in data units for a log axis or scale over [low, high] (> 0)."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    decades = last - first
    mantissas = MANTISSAS.get(decades, (1,)) if decades <= 3 else (1,)
    step = max(1, math.ceil(decades / 8))  # at most about 8 decades labelled
    values = [
        mantissa * 10.0**exponent
        for exponent in range(first, last + 1, step)
        for mantissa in mantissas
        if low * (1 - 1e-9) <= mantissa * 10.0**exponent <= high * (1 + 1e-9)
    ]
    if len(values) < 2:  # a span within one decade: its ends, and the middle
        values = sorted({low, math.sqrt(low * high), high})
    return {"tickvals": values, "ticktext": [number_text(value) for value in values]}


def padded(low: float, high: float, *, log: bool) -> list[float]:
    """An axis range over [low, high] with a margin, in Plotly's units (log10 on a log axis)."""
    if log:
        low, high = math.log10(low), math.log10(high)
    span = high - low
    if span == 0:  # one value: a decade around it on a log axis, a tenth of its size otherwise
        span = 2.0 if log else 0.2 * max(abs(low), 1.0)
        return [low - span / 2, high + span / 2]
    return [low - PAD * span, high + PAD * span]


def trial_ticks(numbers: Iterable[int]) -> dict[str, Any]:
    """Whole-number ticks for trial numbers (one trial would otherwise read -0.4, -0.2, 0 ...)."""
    numbers = list(numbers) or [0]
    wanted = (max(numbers) - min(numbers) + 1) / TRIAL_TICKS
    # The smallest round step (1, 2, 5, 10, 20 ...) that labels at most about TRIAL_TICKS trials
    step = min(
        mantissa * 10**exponent
        for exponent in range(0, 10)
        for mantissa in (1, 2, 5)
        if mantissa * 10**exponent >= wanted
    )
    return {"tick0": 0, "dtick": step}


# --- Optuna's views, drawn by Optuna and tidied here ---

VAL_TOP1 = "val top-1"  # Optuna's target name in our views
VAL_TOP1_TITLES = (VAL_TOP1, "Intermediate Value")  # y axes that show val top-1 (0..1)
TRIAL_TITLE = "Trial"
# Optuna draws val top-1 as the fraction it is (0.28-0.35); the factor figures show percent. d3's
# `~%` writes a fraction as percent with as many decimals as the tick needs and no trailing
# zeros (28%, 28.5%), so ticks a point apart never repeat as a fixed `.0%` would; hover shows two.
PERCENT_TICKS = {"tickformat": "~%", "hoverformat": ".2%"}


def tidy_optuna_view(figure: go.Figure, study: optuna.Study, view: str) -> go.Figure:
    """Optuna's figure with val top-1 kept in 0..1, factor axes over their spaces, whole trials.

    A contour keeps Optuna's ranges: it interpolates only between the trials, and over the whole
    space it would be a small patch in an empty plot."""
    spaces = _float_spaces(study)
    numbers = [trial.number for trial in study.get_trials(deepcopy=False)]
    for name in figure.layout:
        if not name.startswith(("xaxis", "yaxis")):
            continue
        axis = figure.layout[name]
        title = axis.title.text
        if title in VAL_TOP1_TITLES or (name.startswith("yaxis") and title is None):
            # A slice's later panels share the first one's untitled val top-1 axis
            axis.update(autorangeoptions={"clipmin": 0, "clipmax": 1}, **PERCENT_TICKS)
        elif title == TRIAL_TITLE and numbers:  # trials that exist, not -1 and 1 around trial 0
            pad = max(0.5, 0.02 * (max(numbers) - min(numbers)))
            axis.update(trial_ticks(numbers), range=[min(numbers) - pad, max(numbers) + pad])
        elif title in spaces and view == "slice":
            axis.update(_space_axis(spaces[title], axis.type == "log"))
        elif axis.type == "log" and axis.range is not None:
            # Plotly labels a log axis of a decade or two `5 0.001 2 5 0.01 2`: the 2 and 5 of
            # each decade alone, repeated
            low, high = (10.0**end for end in axis.range)
            axis.update(log_ticks(low, high))
        elif title == "Step" and _few_steps(study):  # epochs: whole numbers too
            axis.update(dtick=1)
    for trace in figure.data:
        _tidy_colour_bar(trace, numbers)
    if view == "parallel":
        _percent_parallel_column(figure)
        _visible_parallel_lines(figure)
    if view == "intermediate":  # Optuna's names for what our objective reports each epoch
        figure.update_layout(xaxis_title="epoch", yaxis_title=VAL_TOP1)
    return figure


def _float_spaces(study: optuna.Study) -> dict[str, tuple[float, float]]:
    """Each numeric parameter's span over every space a trial sampled it from."""
    spans: dict[str, tuple[float, float]] = {}
    for trial in study.get_trials(deepcopy=False):
        for name, distribution in trial.distributions.items():
            if isinstance(distribution, (FloatDistribution, IntDistribution)):
                low, high = spans.get(name, (distribution.low, distribution.high))
                spans[name] = (min(low, distribution.low), max(high, distribution.high))
    return spans


def _space_axis(span: tuple[float, float], log: bool) -> dict[str, Any]:
    low, high = span
    if log and low > 0:
        return {"range": padded(low, high, log=True), **log_ticks(low, high)}
    if log:
        # Optuna draws a log axis where any trial sampled the parameter on a log scale, though
        # another sampled it from 0: a log axis cannot span that space, and a linear range on it
        # would be read as powers of ten (0 to 1 as 1 to 10) and lose every point. Plotly's own
        # range over the points stays.
        return {}
    return {"range": padded(low, high, log=False)}


def _few_steps(study: optuna.Study) -> bool:
    steps = {
        step for trial in study.get_trials(deepcopy=False) for step in trial.intermediate_values
    }
    return len(steps) <= 20


def _tidy_colour_bar(trace: Any, numbers: list[int]) -> None:
    # A contour's colour bar is the trace's own; a scatter's is its marker's
    holder = trace if trace.type == "contour" else getattr(trace, "marker", None)
    bar = getattr(holder, "colorbar", None)
    if bar is None or bar.title.text is None:
        return
    if bar.title.text == TRIAL_TITLE:  # the slice's colour: which trial
        bar.update(trial_ticks(numbers))
    elif bar.title.text == VAL_TOP1:  # the contour's and parallel coordinates' colour
        bar.update(tickformat=PERCENT_TICKS["tickformat"])


def _percent_parallel_column(figure: go.Figure) -> None:
    """Optuna draws parallel coordinates as lines over annotations: the val top-1 column's labels
    and each line's hover are text (`0.306`), written here as percent (`30.6%`)."""
    columns = list(figure.layout.xaxis.ticktext or ())
    if VAL_TOP1 not in columns:
        return
    column = columns.index(VAL_TOP1)
    for note in figure.layout.annotations:
        if note.x == column:
            note.text = _percent_text(note.text)
    for trace in figure.data:
        if trace.customdata is not None:  # (column name, value) per column, for the hover
            trace.customdata = [
                (name, _percent_text(text) if name == VAL_TOP1 else text)
                for name, text in trace.customdata
            ]


# Optuna colours parallel coordinates on Blues, whose low end is white: on the white plot, at half
# opacity, the worst trials' lines vanish (3 of 4 in a study with one good trial). The same blues
# from a mid tone up, drawn more opaque, keep every line in sight and the best the darkest.
PARALLEL_SCALE = plotly.colors.sequential.Blues[3:]
PARALLEL_OPACITY = 0.8


def _visible_parallel_lines(figure: go.Figure) -> None:
    """Each trial's line coloured by val top-1 on PARALLEL_SCALE, and the colour bar to match.

    A line's height on the val top-1 column is that value scaled to 0..1 over the trials, as its
    colour was: the colour is taken again from there."""
    columns = list(figure.layout.xaxis.ticktext or ())
    bars = [trace for trace in figure.data if trace.mode == "markers" and trace.marker.colorscale]
    if VAL_TOP1 not in columns or len(bars) != 1:  # not the figure this was written for
        return
    column, bar = columns.index(VAL_TOP1), bars[0]
    for trace in figure.data:
        if trace.mode == "lines" and trace.customdata is not None:
            position = trace.y[column]
            if bar.marker.reversescale:
                position = 1 - position
            trace.line.color = plotly.colors.sample_colorscale(PARALLEL_SCALE, position)[0]
            trace.opacity = PARALLEL_OPACITY
    bar.marker.colorscale = plotly.colors.make_colorscale(PARALLEL_SCALE)


def _percent_text(text: str) -> str:
    try:
        return f"{100 * float(text):.3g}%"
    except ValueError:  # not a number: left as Optuna wrote it
        return text
