"""Optuna's timeline, drawn from the trials that trained, each named by the state status shows.

Optuna's states do not tell apart what hpsearch does with a trial. A trial cut short and queued
to resume (a signal, a dead worker) ends FAIL, and Optuna's timeline draws it red, a failure;
a trial asha paused at a rung ends PRUNED, an orange bar like one the pruner stopped for good;
and a paused trial's continuation, waiting or closed without running, never trained, yet Optuna
draws it as a bar of its own. The report drops those continuations, as its caption and summary
count without them (`promotion.never_ran`), and draws stopped, paused and promoted trials in
colours of their own, named in the legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial

from search import attrs
from search.study.promotion import never_ran, promoted

STOPPED = "STOPPED (resumed)"
PAUSED = "PAUSED (asha)"
PROMOTED = "PROMOTED (asha)"


class OwnBars(NamedTuple):
    """Trials whose bars leave Optuna's trace of their state for a trace of their own."""

    name: str  # the legend's
    optuna_state: str  # the trace Optuna draws them in
    colour: str  # none of the colours Optuna gives a state: Plotly's purple, pale orange, teal
    numbers: set[int]


def timeline_with_stopped_trials(study: optuna.Study) -> go.Figure:
    trials = study.get_trials(deepcopy=False)
    figure = optuna.visualization.plot_timeline(study)
    drop_bars(figure, {trial.number for trial in trials if never_ran(trial)})
    for own in own_bars(trials):
        split_bars(figure, own)
    return figure


def own_bars(trials: list[FrozenTrial]) -> tuple[OwnBars, ...]:
    """The stopped, paused (not promoted, or not yet) and promoted trials, as status counts them
    (`promotion.shown_counts`)."""
    continued = promoted(trials)
    paused = {trial.number for trial in trials if attrs.is_paused(trial)}
    return (
        OwnBars(STOPPED, "FAIL", "#9467bd", attrs.stopped_numbers(trials)),
        OwnBars(PAUSED, "PRUNED", "#ffbb78", paused - continued),
        OwnBars(PROMOTED, "PRUNED", "#17becf", paused & continued),
    )


def drop_bars(figure: go.Figure, numbers: set[int]) -> go.Figure:
    """Take the bars of the trials `numbers` out of the figure; a trace left empty goes too."""
    kept_traces = []
    for trace in figure.data:
        kept = [index for index, number in enumerate(trace.y) if number not in numbers]
        if kept:
            trace.update(_bars(trace, kept))
            kept_traces.append(trace)
    figure.data = tuple(kept_traces)
    return figure


def split_bars(figure: go.Figure, own: OwnBars) -> go.Figure:
    """Move the bars of `own.numbers` out of Optuna's trace of their state into one of their own."""
    source = next((trace for trace in figure.data if trace.name == own.optuna_state), None)
    if source is None:
        return figure
    moved = [index for index, number in enumerate(source.y) if number in own.numbers]
    if not moved:
        return figure
    kept = [index for index in range(len(source.y)) if index not in moved]
    trace = go.Bar(source)  # Optuna's bar, its hover text and orientation included
    trace.update(
        _bars(source, moved),
        name=own.name,
        marker={"color": own.colour},
        hovertemplate=f"%{{text}}<extra>{own.name}</extra>",
    )
    if kept:
        source.update(_bars(source, kept))
    else:
        figure.data = tuple(other for other in figure.data if other is not source)
    figure.add_trace(trace)
    return figure


def _bars(trace: go.Bar, indices: Sequence[int]) -> dict:
    """The per-bar arrays of `trace`, at `indices`."""
    return {
        key: [trace[key][index] for index in indices]
        for key in ("x", "y", "base", "text")
        if trace[key] is not None
    }
