"""Optuna's timeline, with the stopped trials drawn apart from the failed ones.

Optuna has no state for a trial cut short and queued to resume (a signal, a dead worker): it ends
FAIL, and Optuna's timeline draws it red, a failure. The report draws those bars in a colour of
their own, named in the legend; `attrs.stopped_numbers` says which trials they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
import plotly.graph_objects as go

from search import attrs

STOPPED = "STOPPED (resumed)"
STOPPED_COLOUR = "#9467bd"  # Plotly's purple, none of the colours Optuna gives a state


def timeline_with_stopped_trials(study: optuna.Study) -> go.Figure:
    figure = optuna.visualization.plot_timeline(study)
    return split_stopped(figure, attrs.stopped_numbers(study.get_trials(deepcopy=False)))


def split_stopped(figure: go.Figure, stopped: set[int]) -> go.Figure:
    """Move the bars of the `stopped` trials out of Optuna's FAIL trace into one of their own."""
    failed = next((trace for trace in figure.data if trace.name == "FAIL"), None)
    if failed is None:
        return figure
    moved = [index for index, number in enumerate(failed.y) if number in stopped]
    if not moved:
        return figure
    kept = [index for index in range(len(failed.y)) if index not in moved]
    own = go.Bar(failed)  # Optuna's bar, its hover text and orientation included
    own.update(
        _bars(failed, moved),
        name=STOPPED,
        marker={"color": STOPPED_COLOUR},
        hovertemplate=f"%{{text}}<extra>{STOPPED}</extra>",
    )
    if kept:
        failed.update(_bars(failed, kept))
    else:
        figure.data = tuple(trace for trace in figure.data if trace is not failed)
    figure.add_trace(own)
    return figure


def _bars(trace: go.Bar, indices: Sequence[int]) -> dict:
    """The per-bar arrays of `trace`, at `indices`."""
    return {
        key: [trace[key][index] for index in indices]
        for key in ("x", "y", "base", "text")
        if trace[key] is not None
    }
