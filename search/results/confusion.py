"""The confusion matrix of `hpsearch evaluate`, as a figure and as a page that opens offline."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from search.results import output_file
from search.results.evaluation import Evaluation
from search.results.figures import escaped


def confusion_figure(evaluation: Evaluation) -> go.Figure:
    """Rows are true classes, columns predicted ones; hover shows the count and the row's share."""
    names = [escaped(name) for name in evaluation.class_names]
    counts = [list(row) for row in evaluation.confusion]
    shares = [[count / max(sum(row), 1) for count in row] for row in counts]
    figure = go.Figure(
        go.Heatmap(
            z=shares,
            x=names,
            y=names,
            customdata=counts,
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": {"text": "share of row"}, "tickformat": ".0%"},
            text=counts,
            texttemplate="%{text}",
            hovertemplate="true %{y}, predicted %{x}: %{customdata} (%{z:.1%})<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"Confusion matrix: {escaped(Path(evaluation.weights).name)} on "
        f"{escaped(evaluation.data)}<br><sup>"
        f"top-1 {evaluation.top1:.2%}, top-{evaluation.top_k} {evaluation.top5:.2%}, "
        f"{evaluation.images} val images at {evaluation.image_size} px</sup>",
        xaxis_title="predicted class",
        yaxis_title="true class",
        yaxis_autorange="reversed",
        width=None,
        height=max(500, 40 * len(names) + 200),
    )
    return figure


def write_confusion_page(evaluation: Evaluation, path: Path, what: str = "-o") -> None:
    """A self-contained page (plotly.js inline, no MathJax) that opens offline, written whole or
    not at all; `what` names `path` in an error."""
    page = confusion_figure(evaluation).to_html(
        include_plotlyjs=True,
        include_mathjax=False,
        full_html=True,
        config={"displaylogo": False},
    )
    output_file.write_text(path, page, what)
