"""Drawing the report: Plotly figures from `search.report`'s collected data, and one HTML page.

The page opens offline: plotly.js is embedded once, no figure asks for MathJax, fonts or a CDN.
Every piece of user text (study, parameter and class names, fail reasons) is escaped before it
reaches the page or a figure's labels, since Plotly reads labels as a small subset of HTML.
"""

from __future__ import annotations

import html
import json
import math
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import optuna
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative, sample_colorscale
from plotly.offline import get_plotlyjs

from search.report import (FACTORS, OPTUNA_VIEWS, FactorInfo, SummaryInfo, TrialCurve, format_seconds,
                           get_factor_info, get_summary_info, trial_curves, view_obstacle)

if TYPE_CHECKING:
    from search.evaluate import Evaluation

CATEGORY_COLOURS = qualitative.Plotly
SCALE_COLOURS = "Viridis"
# Where a trial stopped: a pruned trial ends in a downward triangle, a failed one in a cross.
STOP_SYMBOLS = {"pruned": "triangle-down", "fail": "x"}
VAL_TOP1 = "val top-1"
FACTOR_TITLES = {"optimizer": "optimizer", "lr": "learning rate", "eps": "eps", "momentum": "momentum"}
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


class Figure(NamedTuple):
    key: str  # unique in one report; names its PNG file
    title: str  # plain text; escaped where it is shown
    figure: go.Figure
    cautions: tuple[str, ...] = ()  # what Optuna warned while drawing it (too few trials, say)


class Note(NamedTuple):
    title: str
    reason: str  # why the view is missing, plain text


class Report(NamedTuple):
    html: str
    figures: tuple[Figure, ...]
    notes: tuple[Note, ...]


def escaped(text: Any) -> str:
    return html.escape(str(text), quote=True)


def format_value(factor: str, value: Any) -> str:
    if isinstance(value, float) and factor in ("lr", "eps"):
        return f"{value:.3g}"
    return str(value)


# --- the factor figures -----------------------------------------------------------------------------

def factor_curves_figure(info: FactorInfo) -> go.Figure:
    """Val top-1 per epoch, one line per trial, coloured by the factor's value."""
    figure = go.Figure()
    colour_of = _colouring(info)
    shown_levels: set[Any] = set()
    for index, curve in enumerate(info.curves):
        value = curve.factors[info.factor]
        trace = _curve_trace(curve, info, colour_of(value))
        if info.scale == "categorical":
            trace.update(name=escaped(value), legendgroup=escaped(value), showlegend=value not in shown_levels)
            shown_levels.add(value)
        else:  # markers carry the scale, so a colour bar explains the colours of all the lines
            trace.marker.update(color=[_scaled(info, value)] * len(trace.x), showscale=index == 0,
                                **_colour_scale(info))
        figure.add_trace(trace)
    name = FACTOR_TITLES[info.factor]
    figure.update_layout(
        title=f"{name.capitalize()}: {VAL_TOP1} per epoch, one line per trial"
              "<br><sup>▼ pruned and ✕ failed where the trial stopped (✕ at 0: failed before its first "
              "val score)</sup>",
        xaxis_title="epoch", yaxis_title=VAL_TOP1, yaxis_tickformat=".0%", legend_title_text=name,
        hovermode="closest", margin={"t": 90})
    figure.update_xaxes(dtick=1 if _max_epoch(info.curves) <= 20 else None)
    return figure


def _curve_trace(curve: TrialCurve, info: FactorInfo, colour: str) -> go.Scatter:
    epochs, top1 = list(curve.epochs), list(curve.val_top1)
    if not epochs:  # a trial that failed in its first epoch has no val score to draw
        epochs, top1 = [1], [0.0]
    symbols = ["circle"] * len(epochs)
    sizes = [5] * len(epochs)
    if curve.state in STOP_SYMBOLS:
        symbols[-1], sizes[-1] = STOP_SYMBOLS[curve.state], 12
    label = _trial_label(curve)
    return go.Scatter(x=epochs, y=top1, mode="lines+markers", line={"color": colour, "width": 1.5},
                      marker={"symbol": symbols, "size": sizes, "color": colour},
                      text=[label] * len(epochs), hovertemplate="%{text}<br>epoch %{x}: %{y:.1%}<extra></extra>",
                      showlegend=False, meta={"study": curve.study, "trial": curve.number})


def _trial_label(curve: TrialCurve) -> str:
    """Hover text: each line escaped on its own, so only our <br> tags reach Plotly."""
    lines = [f"{curve.study} trial {curve.number} ({curve.state})", _settings_text(curve.factors)]
    if curve.fail_reason:
        lines.append(_shorten(curve.fail_reason, 100))
    return "<br>".join(escaped(line) for line in lines)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _max_epoch(curves: tuple[TrialCurve, ...]) -> int:
    return max((max(curve.epochs) for curve in curves if curve.epochs), default=1)


def _colouring(info: FactorInfo) -> Callable[[Any], str]:
    if info.scale == "categorical":
        colours = {level: CATEGORY_COLOURS[index % len(CATEGORY_COLOURS)] for index, level in enumerate(info.levels)}
        return colours.__getitem__
    low, high = _colour_range(info)

    def colour(value: Any) -> str:
        position = 0.5 if high == low else (_scaled(info, value) - low) / (high - low)
        return sample_colorscale(SCALE_COLOURS, [position])[0]
    return colour


def _scaled(info: FactorInfo, value: float) -> float:
    # A log colour scale needs a positive value; momentum 0 is common, so it is linear.
    return math.log10(value) if info.scale == "log" else float(value)


def _colour_range(info: FactorInfo) -> tuple[float, float]:
    scaled = [_scaled(info, level) for level in info.levels]
    return min(scaled), max(scaled)


def _colour_scale(info: FactorInfo) -> dict[str, Any]:
    low, high = _colour_range(info)
    bar: dict[str, Any] = {"title": {"text": FACTOR_TITLES[info.factor]}}
    if info.scale == "log":
        step = max(1, math.ceil((high - low) / 8))  # at most about 8 decades labelled
        ticks = list(range(math.floor(low), math.ceil(high) + 1, step))
        bar.update(tickvals=ticks, ticktext=[f"1e{tick}" for tick in ticks])
    return {"colorscale": SCALE_COLOURS, "cmin": low if high > low else low - 0.5,
            "cmax": high if high > low else low + 0.5,
            "colorbar": bar}


def factor_effect_figure(info: FactorInfo) -> go.Figure:
    """Each complete trial's value against the factor: by level, or against the value (log axis for lr, eps)."""
    complete = [curve for curve in info.curves if curve.state == "complete"]
    figure = go.Figure()
    name = FACTOR_TITLES[info.factor]
    if info.scale == "categorical":
        for level in info.levels:
            at_level = [curve for curve in complete if curve.factors[info.factor] == level]
            labels = [_trial_label(curve) for curve in at_level]
            figure.add_trace(go.Box(y=[curve.value for curve in at_level], name=escaped(level), boxpoints="all",
                                    jitter=0.4, pointpos=0, text=labels,
                                    hovertemplate="%{text}<br>%{y:.1%}<extra></extra>"))
    else:
        _add_effect_scatter(figure, complete, info.factor)
        figure.update_xaxes(type="log" if info.scale == "log" else "linear", title_text=name)
    figure.update_layout(title=f"{name.capitalize()}: effect on {VAL_TOP1} (complete trials, best epoch)",
                         yaxis_title=VAL_TOP1, yaxis_tickformat=".0%")
    if not complete:
        figure.add_annotation(text=f"no complete trial sets {escaped(name)}", showarrow=False,
                              xref="paper", yref="paper", x=0.5, y=0.5)
    return figure


def _add_effect_scatter(figure: go.Figure, complete: list[TrialCurve], factor: str) -> None:
    optimizers = sorted({curve.factors["optimizer"] for curve in complete}, key=str)
    for index, optimizer in enumerate(optimizers):
        group = [curve for curve in complete if curve.factors["optimizer"] == optimizer]
        figure.add_trace(go.Scatter(
            x=[curve.factors[factor] for curve in group], y=[curve.value for curve in group], mode="markers",
            name=escaped(optimizer), marker={"size": 9, "color": CATEGORY_COLOURS[index % len(CATEGORY_COLOURS)]},
            text=[_trial_label(curve) for curve in group],
            hovertemplate="%{text}<br>%{y:.1%}<extra></extra>"))


# --- Optuna's views -----------------------------------------------------------------------------------

def _importances(evaluator: optuna.importance.BaseImportanceEvaluator | None) -> Callable[[optuna.Study], go.Figure]:
    return lambda study: optuna.visualization.plot_param_importances(study, evaluator=evaluator,
                                                                     target_name=VAL_TOP1)


def _fanova(study: optuna.Study) -> go.Figure:
    return _importances(optuna.importance.FanovaImportanceEvaluator(seed=0))(study)


OPTUNA_DRAWERS: dict[str, tuple[str, Callable[[optuna.Study], go.Figure]]] = {
    "history": ("Optimization history",
                lambda study: optuna.visualization.plot_optimization_history(study, target_name=VAL_TOP1)),
    "importance": ("Parameter importances (PED-ANOVA, Optuna's default)", _importances(None)),
    "fanova": ("Parameter importances (fANOVA)", _fanova),
    "slice": ("Slice", lambda study: optuna.visualization.plot_slice(study, target_name=VAL_TOP1)),
    "contour_lr_eps": ("Contour: lr against eps",
                       lambda study: optuna.visualization.plot_contour(study, params=["lr", "eps"],
                                                                       target_name=VAL_TOP1)),
    "contour_lr_momentum": ("Contour: lr against momentum",
                            lambda study: optuna.visualization.plot_contour(study, params=["lr", "momentum"],
                                                                            target_name=VAL_TOP1)),
    "parallel": ("Parallel coordinates",
                 lambda study: optuna.visualization.plot_parallel_coordinate(study, target_name=VAL_TOP1)),
    "intermediate": ("Intermediate values (val top-1 per epoch)", optuna.visualization.plot_intermediate_values),
    "timeline": ("Timeline", optuna.visualization.plot_timeline),
}


def optuna_view(study: optuna.Study, view: str) -> Figure | Note:
    """One of Optuna's views of the study, or a note saying why it cannot be drawn."""
    title, draw = OPTUNA_DRAWERS[view]
    reason = view_obstacle(study, view)
    if reason is not None:
        return Note(title, reason)
    # Optuna's warnings about a small study belong beside the figure, not on the terminal.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            figure = draw(study)
        # A view that breaks on an unusual study costs one figure, never the report: the note says why.
        except Exception as error:  # noqa: BLE001
            return Note(title, f"Optuna could not draw it: {type(error).__name__}: {error}")
    cautions = tuple(dict.fromkeys(str(warning.message) for warning in caught
                                   if not issubclass(warning.category, optuna.exceptions.ExperimentalWarning)))
    return Figure(f"{_slug(study.study_name)}-{view}", title, figure, cautions)


# --- the page ---------------------------------------------------------------------------------------

def build_report(studies: list[optuna.Study], *, storage_label: str = "") -> Report:
    """The whole report: summaries, the factor analysis over all studies' trials, Optuna's views per study."""
    summaries = [get_summary_info(study) for study in studies]
    curves = trial_curves(studies)
    page = _Page()
    page.add_html(_header(studies, storage_label))
    page.add_html('<section id="summary"><h2>Summary</h2>' + "".join(map(_summary_html, summaries)) + "</section>")
    page.add_html('<section id="factors"><h2>Factor analysis</h2>')
    for factor in FACTORS:
        _add_factor(page, get_factor_info(curves, factor))
    page.add_html('</section><section id="optuna-views"><h2>Optuna\'s views</h2>')
    for study in studies:
        page.add_html(f'<div class="study-views"><h3>Study {escaped(study.study_name)}</h3>')
        for view in OPTUNA_VIEWS:
            page.add_view(optuna_view(study, view))
        page.add_html("</div>")
    page.add_html("</section>")
    return page.finish(_title(studies))


def _add_factor(page: "_Page", info: FactorInfo) -> None:
    name = FACTOR_TITLES[info.factor]
    page.add_html(f'<div class="factor" id="factor-{info.factor}"><h3>{escaped(name.capitalize())}</h3>')
    if info.curves:
        page.add_figure(Figure(f"factor-{info.factor}-curves", f"{name}: val top-1 per epoch",
                               factor_curves_figure(info)))
        page.add_figure(Figure(f"factor-{info.factor}-effect", f"{name}: effect on val top-1",
                               factor_effect_figure(info)))
    else:
        page.add_view(Note(f"{name.capitalize()}", f"no trial of these studies sets {name}"))
    page.add_html("</div>")


class _Page:
    """The page's body in order, and its figures, drawn by one script once plotly.js is loaded."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figures: list[Figure] = []
        self.notes: list[Note] = []

    def add_html(self, text: str) -> None:
        self.parts.append(text)

    def add_figure(self, figure: Figure) -> None:
        self.parts.append(f'<div class="figure" id="figure-{len(self.figures)}" '
                          f'data-key="{escaped(figure.key)}"></div>')
        self.figures.append(figure)

    def add_view(self, view: Figure | Note) -> None:
        if isinstance(view, Figure):
            self.add_html(f"<h4>{escaped(view.title)}</h4>")
            self.add_figure(view)
            self.parts.extend(f'<p class="caution">Optuna warns: {escaped(caution)}</p>' for caution in view.cautions)
            return
        self.parts.append(f'<h4>{escaped(view.title)}</h4><p class="note">Not drawn: {escaped(view.reason)}</p>')
        self.notes.append(view)

    def finish(self, title: str) -> Report:
        specs = ",".join(f'{{"id":"figure-{index}","figure":{pio.to_json(figure.figure, validate=False)}}}'
                         for index, figure in enumerate(self.figures))
        page = PAGE.format(title=escaped(title), style=STYLE, plotly=get_plotlyjs(), body="\n".join(self.parts),
                           figures=_script_safe(f"[{specs}]"), config=json.dumps(PLOT_CONFIG),
                           count=len(self.figures))
        return Report(page, tuple(self.figures), tuple(self.notes))


def _script_safe(json_text: str) -> str:
    # Inside <script>, "</script>" in a string would end the block: JSON may spell <, > and & as escapes.
    return json_text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _title(studies: list[optuna.Study]) -> str:
    return "hpsearch report: " + ", ".join(study.study_name for study in studies)


def _header(studies: list[optuna.Study], storage_label: str) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = ", ".join(f"<code>{escaped(study.study_name)}</code>" for study in studies)
    where = f" in <code>{escaped(storage_label)}</code>" if storage_label else ""
    return (f"<header><h1>{escaped(_title(studies))}</h1><p>Studies {names}{where}; made {when}. Val top-1 "
            "is the fraction of validation images whose top class is right.</p>"
            '<nav><a href="#summary">Summary</a> · <a href="#factors">Factor analysis</a> · '
            "<a href=\"#optuna-views\">Optuna's views</a></nav></header>")


def _summary_html(summary: SummaryInfo) -> str:
    counts = summary.counts
    saved = summary.epochs_without_pruning - summary.epochs_trained
    best = summary.best
    best_text = (f"trial {best.number}: {VAL_TOP1} {best.value:.2%} with "
                 + escaped(_settings_text(best.factors)) if best else "no complete trial yet")
    return (f'<article class="study-summary"><h3>Study {escaped(summary.study)}</h3><dl>'
            f"<dt>Best</dt><dd class=\"best\">{best_text}</dd>"
            f"<dt>Best trial's settings</dt><dd><code>{escaped(_settings_text(summary.best_settings))}</code></dd>"
            f"<dt>Trials</dt><dd class=\"counts\">{counts['complete']} complete, {counts['pruned']} pruned, "
            f"{counts['fail']} failed, {counts['running']} running, {counts['waiting']} waiting</dd>"
            f"<dt>Epochs</dt><dd class=\"epochs\">{summary.epochs_trained} trained, against "
            f"{summary.epochs_without_pruning} without pruning ({saved} saved)</dd>"
            f"<dt>Compute</dt><dd class=\"compute\">{format_seconds(summary.compute_seconds)} of training and "
            f"evaluation</dd></dl>{_top_table(summary)}</article>")


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{name}={format_value(name, value)}" for name, value in settings.items() if value is not None)


def _top_table(summary: SummaryInfo) -> str:
    if not summary.top:
        return '<p class="note">No complete trial to rank yet.</p>'
    head = "".join(f"<th>{name}</th>" for name in ("rank", "trial", VAL_TOP1, *FACTORS, "epochs", "seconds"))
    rows = []
    for rank, row in enumerate(summary.top, start=1):
        factors = "".join(f"<td>{escaped(format_value(name, row.factors.get(name, '')))}</td>" for name in FACTORS)
        rows.append(f"<tr><td>{rank}</td><td>{row.number}</td><td>{row.value:.2%}</td>{factors}"
                    f"<td>{row.epochs_run}</td><td>{row.seconds:.1f}</td></tr>")
    return (f'<table class="top-trials"><caption>Top {len(summary.top)} complete trials</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "study"


# --- the confusion matrix of `hpsearch evaluate` ----------------------------------------------------

def confusion_figure(evaluation: "Evaluation") -> go.Figure:
    """Rows are the true classes, columns the predicted ones; hover shows the count and the row's share."""
    names = [escaped(name) for name in evaluation.classes]
    counts = [list(row) for row in evaluation.confusion]
    shares = [[count / max(sum(row), 1) for count in row] for row in counts]
    figure = go.Figure(go.Heatmap(z=shares, x=names, y=names, customdata=counts, colorscale="Blues", zmin=0, zmax=1,
                                  colorbar={"title": {"text": "share of row"}, "tickformat": ".0%"},
                                  text=counts, texttemplate="%{text}",
                                  hovertemplate="true %{y}, predicted %{x}: %{customdata} (%{z:.1%})<extra></extra>"))
    figure.update_layout(
        title=f"Confusion matrix: {escaped(Path(evaluation.weights).name)} on {escaped(evaluation.data)}<br><sup>"
              f"top-1 {evaluation.top1:.2%}, top-{evaluation.top_k} {evaluation.top5:.2%}, "
              f"{evaluation.images} val images at {evaluation.image_size} px</sup>",
        xaxis_title="predicted class", yaxis_title="true class", yaxis_autorange="reversed",
        width=None, height=max(500, 40 * len(names) + 200))
    return figure


def write_confusion_page(evaluation: "Evaluation", path: Path) -> None:
    """A self-contained page (plotly.js inline, no MathJax) that opens offline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    confusion_figure(evaluation).write_html(path, include_plotlyjs=True, include_mathjax=False, full_html=True,
                                            config={"displaylogo": False})


# --- PNG files --------------------------------------------------------------------------------------

def png_obstacle() -> str | None:
    """Why figures cannot be written as PNG here, or None: kaleido drives a Chrome or Chromium."""
    try:
        import kaleido  # noqa: F401
        from choreographer.browsers.chromium import Chromium
    except ImportError:
        return "PNG export needs the kaleido package (pip install kaleido) and a Chrome or Chromium"
    if Chromium.find_browser(skip_local=False) is None:
        return ("PNG export needs a Chrome or Chromium, and none was found (install chromium, or run "
                "`plotly_get_chrome`, or set BROWSER_PATH)")
    return None


def write_pngs(figures: tuple[Figure, ...], folder: Path) -> list[Path] | None:
    """Write each figure as FOLDER/NN-KEY.png; None (writing nothing) when png_obstacle() says why not."""
    if png_obstacle() is not None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{index:02d}-{_slug(figure.key)}.png" for index, figure in enumerate(figures)]
    # One call renders them all in one browser session; a browser per figure would take seconds each.
    pio.write_images([figure.figure for figure in figures], paths, width=1100, height=600)
    return paths


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1rem 2rem; color: #222; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: .2rem; margin-top: 2.5rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
th, td { border: 1px solid #ddd; padding: .2rem .6rem; text-align: right; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
.figure { width: 100%; height: 520px; }
.caution { color: #555; font-size: .9em; margin: 0 0 1rem; }
.note { color: #8a5a00; background: #fff7e6; border-left: 4px solid #f0b429; padding: .4rem .8rem; }
code { background: #f4f4f4; padding: 0 .2rem; word-break: break-all; }
"""

# Plotly is told MathJax is local (absent) so that it never tries to load it; the figures hold no LaTeX.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{style}</style>
<script>window.PlotlyConfig = {{MathJaxConfig: "local"}};</script>
<script>{plotly}</script>
</head>
<body data-figures="{count}">
{body}
<script type="application/json" id="report-figures">{figures}</script>
<script>
(function () {{
  var specs = JSON.parse(document.getElementById("report-figures").textContent);
  var config = {config};
  var drawing = specs.map(function (spec) {{
    return Plotly.newPlot(spec.id, spec.figure.data, spec.figure.layout, config);
  }});
  Promise.all(drawing).then(function () {{
    var done = document.createElement("p");
    done.id = "report-drawn";
    done.textContent = "All " + specs.length + " figures drawn.";
    document.body.appendChild(done);
  }}, function (error) {{
    document.body.setAttribute("data-figure-error", String(error));
  }});
}})();
</script>
</body>
</html>
"""
