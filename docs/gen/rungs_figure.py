"""asha's rungs as a real study ran them: one row per trial's lineage (a trial, its continuations
and retries), a bar over the epochs each of its trials trained, the rungs as dashed lines, and at
each rung the val top-1 the lineage was ranked by there. The docs' pictures draw it
(docs/gen/screenshots.py); docs/img/rungs.svg is the same picture drawn by hand.

As Optuna's views do, collecting (`segments`, tested on made trials in tests/test_docs.py) is
apart from drawing (`rungs_figure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from search import attrs
from search.study.promotion import never_ran, promoted

FIRST, CONTINUATION, RETRY = "first attempt", "promoted continuation", "retry"
COLOURS = {FIRST: "#3f6fb5", CONTINUATION: "#3d8b4f", RETRY: "#8a5fb5"}
# How each trial ended: legend name, marker symbol, fill and outline colours
ENDINGS = {
    "paused": ("paused, never promoted", "circle", "#ffffff", "#222222"),
    "promoted": ("paused, then promoted", "circle", "#ffffff", COLOURS[CONTINUATION]),
    "complete": ("complete", "circle", "#222222", "#222222"),
    "pruned": ("pruned", "x", "#b33", "#b33"),
    "fail": ("failed or stopped", "x", "#b33", "#b33"),
}


class Segment(NamedTuple):
    lineage: int  # the first attempt's number: the row
    number: int  # the trial that trained these epochs
    start: int  # epochs restored from a checkpoint before it trained (0: none)
    end: int  # its last reported epoch
    kind: str  # FIRST, CONTINUATION or RETRY
    ending: str  # a key of ENDINGS, or "running"
    at_rungs: dict[int, float]  # val top-1 at each rung it trained through


def segments(trials: Sequence[FrozenTrial], rungs: Sequence[int]) -> list[Segment]:
    """The epochs each trial trained, by lineage, queued and closed continuations left out (they
    never trained)."""
    continued = promoted(trials)
    found = []
    for trial in trials:
        if never_ran(trial) or trial.state == TrialState.WAITING:
            continue
        start = trial.user_attrs.get(attrs.RESUMED_FROM_EPOCH, 0)
        end = max(trial.intermediate_values, default=start)
        found.append(
            Segment(
                lineage=attrs.first_attempt(trial),
                number=trial.number,
                start=start,
                end=end,
                kind=_kind(trial),
                ending=_ending(trial, continued),
                at_rungs={
                    rung: trial.intermediate_values[rung]
                    for rung in rungs
                    if start < rung <= end and rung in trial.intermediate_values
                },
            )
        )
    return found


def _kind(trial: FrozenTrial) -> str:
    if attrs.PROMOTION_OF in trial.user_attrs:
        return CONTINUATION
    return RETRY if attrs.is_retry(trial) else FIRST


def _ending(trial: FrozenTrial, continued: set[int]) -> str:
    if attrs.is_paused(trial):
        return "promoted" if trial.number in continued else "paused"
    if trial.state == TrialState.RUNNING:
        return "running"
    return trial.state.name.lower()


def rungs_figure(trials: Sequence[FrozenTrial], rungs: Sequence[int], epochs: int) -> go.Figure:
    found = segments(trials, rungs)
    lineages = sorted({segment.lineage for segment in found})
    row = {lineage: index for index, lineage in enumerate(lineages)}
    figure = go.Figure()
    for kind, colour in COLOURS.items():
        xs: list[float | None] = []
        ys: list[float | None] = []
        for segment in (s for s in found if s.kind == kind):
            xs += [segment.start, segment.end, None]
            ys += [row[segment.lineage]] * 2 + [None]
        if xs:
            figure.add_scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=f"trained: {kind}",
                line={"color": colour, "width": 9},
            )
    for ending, (name, symbol, fill, outline) in ENDINGS.items():
        ended = [s for s in found if s.ending == ending]
        if ended:
            figure.add_scatter(
                x=[s.end for s in ended],
                y=[row[s.lineage] for s in ended],
                mode="markers",
                name=name,
                marker={
                    "symbol": symbol,
                    "size": 14,
                    "color": fill,
                    "line": {"color": outline, "width": 2.5},
                },
            )
    _rung_scores(figure, found, row)
    for rung in rungs:
        figure.add_vline(x=rung, line={"color": "#b33", "dash": "dash", "width": 1.2})
        figure.add_annotation(
            x=rung, y=1.0, yref="paper", yanchor="bottom", showarrow=False,
            text=f"rung at epoch {rung}", font={"color": "#b33", "size": 12},
        )  # fmt: skip
    figure.update_layout(
        title=f"asha in a real study: {len(lineages)} trials, rungs at epochs "
        f"{', '.join(map(str, rungs))} of {epochs}",
        template="plotly_white",
        margin={"l": 120, "r": 30, "t": 80, "b": 50},
        legend={"orientation": "h", "y": -0.1, "yanchor": "top"},
        height=figure_height(len(lineages)),
    )
    figure.update_xaxes(title="epoch", range=[-0.1, epochs + 0.3], dtick=1)
    figure.update_yaxes(
        tickvals=list(row.values()),
        ticktext=[_row_label(lineage, found) for lineage in lineages],
        autorange="reversed",
        showgrid=False,
    )
    return figure


def figure_height(rows: int) -> int:
    """Pixels for `rows` rows of bars, 30 px each, and the title, axis and legend around them."""
    return 200 + 30 * rows


def _rung_scores(figure: go.Figure, found: list[Segment], row: dict[int, int]) -> None:
    """The val top-1 each lineage was ranked by at each rung, above its bar."""
    points = [(rung, row[s.lineage], value) for s in found for rung, value in s.at_rungs.items()]
    figure.add_scatter(
        x=[rung - 0.05 for rung, _, _ in points],  # clear of the marker a pause puts there
        y=[y for _, y, _ in points],
        mode="text",
        text=[f"{value:.0%}" for _, _, value in points],
        textposition="top left",
        textfont={"size": 11, "color": "#444"},
        showlegend=False,
    )


def _row_label(lineage: int, found: list[Segment]) -> str:
    """`trial 3 → 9`: the lineage's trials in the order they trained."""
    numbers = sorted(s.number for s in found if s.lineage == lineage)
    return "trial " + " → ".join(map(str, numbers))
