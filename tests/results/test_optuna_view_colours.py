"""Optuna's views read as the report's own: the parallel coordinates draw every trial where a
reader can see it (Optuna's colour scale starts at white, so on its white plot the worst trials'
lines were not there at all), and the intermediate values are val top-1 per epoch, so named."""

from __future__ import annotations

import plotly.colors
import pytest

from search.results import figures
from tests.helpers.made_trials import made_study

# Weighted against white as the browser draws a line of this opacity; above this luminance (0..1,
# white 1) a thin line on white is lost
MOST_LUMINOUS_VISIBLE = 0.85


def _on_white(colour: str, opacity: float) -> tuple[float, ...]:
    red, green, blue = plotly.colors.unlabel_rgb(colour)
    return tuple(opacity * channel / 255 + (1 - opacity) for channel in (red, green, blue))


def _luminance(rgb: tuple[float, ...]) -> float:
    red, green, blue = rgb
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('parallel') / 'parallel.db'}"
    return figures.optuna_view(made_study(url, "spread", 12, seed=3), "parallel").figure


def test_every_trials_line_stands_out_from_the_white_plot(parallel):
    lines = [trace for trace in parallel.data if trace.mode == "lines" and trace.customdata]
    assert len(lines) >= 2
    seen = [_luminance(_on_white(line.line.color, line.opacity)) for line in lines]
    assert max(seen) <= MOST_LUMINOUS_VISIBLE, f"a line is all but white: luminance {max(seen)}"


def test_the_colour_bar_shows_the_colours_the_lines_are_drawn_in(parallel):
    lines = [trace for trace in parallel.data if trace.mode == "lines" and trace.customdata]
    [bar] = [trace for trace in parallel.data if trace.mode == "markers"]
    scale = [colour for _, colour in bar.marker.colorscale]
    worst = min(lines, key=lambda line: line.y[0])  # the val top-1 column's height
    best = max(lines, key=lambda line: line.y[0])
    assert plotly.colors.unlabel_rgb(worst.line.color) == plotly.colors.unlabel_rgb(scale[0])
    assert plotly.colors.unlabel_rgb(best.line.color) == plotly.colors.unlabel_rgb(scale[-1])


def test_the_intermediate_values_are_labelled_val_top1_per_epoch(tmp_path):
    url = f"sqlite:///{tmp_path / 'intermediate.db'}"
    view = figures.optuna_view(made_study(url, "curves", 4), "intermediate").figure
    assert view.layout.xaxis.title.text == "epoch"
    assert view.layout.yaxis.title.text == "val top-1"
    assert view.layout.yaxis.tickformat == "~%"  # still read in percent, as the other views
