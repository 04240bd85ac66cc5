"""The report page: one self-contained HTML file of summaries and figures that opens offline.

plotly.js is embedded once and no figure asks for MathJax, fonts or a CDN. User text is
escaped before it reaches the page.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, NamedTuple

import optuna
import plotly.io as pio
from plotly.offline import get_plotlyjs

from search.attrs import format_setting, settings_text
from search.results.figures import FACTOR_TITLES, VAL_TOP1, Figure, Note, escaped
from search.results.report_data import FACTORS, SummaryInfo, format_seconds, get_summary_info
from search.results.report_views import FactorViews, ReportViews, draw_views

PLOT_CONFIG = {"displaylogo": False, "responsive": True}


class Report(NamedTuple):
    html: str
    figures: tuple[Figure, ...]
    notes: tuple[Note, ...]

    @property
    def drawn(self) -> str:
        """What the page holds, as the command prints it and the page's last line repeats it."""
        return drawn_text(len(self.figures), len(self.notes))

    def __repr__(self) -> str:
        # `html` is megabytes (plotly.js inlined): a notebook showing a report shows what it holds
        return f"Report({self.drawn})"

    @property
    def not_drawn(self) -> list[str]:
        """Each view left out, whose it is and why: the lines the command prints under `drawn`."""
        return [
            f"{note.title}{f' of study {note.study}' if note.study else ''}: {note.reason}"
            for note in self.notes
        ]


def drawn_text(figures: int, notes: int) -> str:
    views = "1 view" if notes == 1 else f"{notes} views"
    return f"{figures} figure{'' if figures == 1 else 's'} drawn, {views} not drawn"


def build_report(studies: list[optuna.Study], *, storage_label: str = "") -> Report:
    """The whole report: summaries, factors over all studies' trials, Optuna's views per study."""
    return report_page(studies, draw_views(studies), storage_label=storage_label)


def report_page(
    studies: list[optuna.Study], views: ReportViews, *, storage_label: str = ""
) -> Report:
    """The page of `views`, drawn from `studies`, with each study's summary."""
    summaries = [get_summary_info(study) for study in studies]
    page = _Page()
    page.add_html(_header(studies, storage_label))
    page.add_html(
        '<section id="summary"><h2>Summary</h2>'
        + "".join(map(_summary_html, summaries))
        + "</section>"
    )
    page.add_html('<section id="factors"><h2>Factor analysis</h2>')
    page.add_html(_one_value_html(views))
    for factor in views.factors:
        _add_factor(page, factor)
    page.add_html('</section><section id="optuna-views"><h2>Optuna\'s views</h2>')
    for study in views.studies:
        page.add_html(f'<div class="study-views"><h3>Study {escaped(study.study)}</h3>')
        if study.left_out:
            page.add_html(f'<p class="one-value">{escaped(study.left_out)}</p>')
        for view in study.views:
            page.add_view(view)
        page.add_html("</div>")
    page.add_html("</section>")
    return page.finish(_title(studies))


def _one_value_html(views: ReportViews) -> str:
    """The factors left out as they took one value, said once; where no factor varied, that
    nothing did, in place of figures of one value each."""
    lines = views.one_value
    if not lines:
        return ""
    if any(isinstance(view, Figure) for factor in views.factors for view in factor.views):
        return "".join(f'<p class="one-value">{escaped(line)}: not drawn.</p>' for line in lines)
    return (
        '<p class="one-value nothing-varied">Nothing varied among the trials: '
        f"{escaped('; '.join(lines))}. No factor figure is drawn.</p>"
    )


def _add_factor(page: _Page, factor: FactorViews) -> None:
    if not factor.views:  # took one value: said once, above
        return
    name = FACTOR_TITLES[factor.factor]
    page.add_html(
        f'<div class="factor" id="factor-{factor.factor}"><h3>{escaped(name.capitalize())}</h3>'
    )
    for view in factor.views:  # a factor's figures go untitled: their own titles say which
        if isinstance(view, Figure):
            page.add_figure(view)
        else:
            page.add_view(view)
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
        self.parts.append(
            f'<div class="figure" id="figure-{len(self.figures)}" '
            f'data-key="{escaped(figure.key)}"></div>'
        )
        self.figures.append(figure)

    def add_view(self, view: Figure | Note) -> None:
        if isinstance(view, Figure):
            self.add_html(f"<h4>{escaped(view.title)}</h4>")
            self.add_figure(view)
            if view.basis:
                self.add_html(f'<p class="basis">{escaped(view.basis)}</p>')
            self.parts.extend(
                f'<p class="caution">Optuna warns: {escaped(caution)}</p>'
                for caution in view.cautions
            )
            return
        self.parts.append(
            f'<h4>{escaped(view.title)}</h4><p class="note">Not drawn: {escaped(view.reason)}</p>'
        )
        self.notes.append(view)

    def finish(self, title: str) -> Report:
        specs = ",".join(
            f'{{"id":"figure-{index}","figure":{pio.to_json(figure.figure, validate=False)}}}'
            for index, figure in enumerate(self.figures)
        )
        page = PAGE.format(
            title=escaped(title),
            style=STYLE,
            plotly=get_plotlyjs(),
            body="\n".join(self.parts),
            figures=_script_safe(f"[{specs}]"),
            config=json.dumps(PLOT_CONFIG),
            count=len(self.figures),
            # Shown once every figure has drawn, so it says the same as the command did
            drawn=_script_safe(json.dumps(drawn_text(len(self.figures), len(self.notes)) + ".")),
        )
        return Report(page, tuple(self.figures), tuple(self.notes))


def _script_safe(json_text: str) -> str:
    # Inside <script>, "</script>" in a string would end
    # the block: JSON may spell <, > and & as escapes.
    return json_text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _title(studies: list[optuna.Study]) -> str:
    return "hpsearch report: " + ", ".join(study.study_name for study in studies)


def _header(studies: list[optuna.Study], storage_label: str) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = ", ".join(f"<code>{escaped(study.study_name)}</code>" for study in studies)
    where = f" in <code>{escaped(storage_label)}</code>" if storage_label else ""
    return (
        f"<header><h1>{escaped(_title(studies))}</h1><p>{_studies_word(studies)} {names}{where}; "
        f"made {when}. Val top-1 is the share of validation images whose top class is right, in "
        "percent in every figure and table.</p>"
        '<nav><a href="#summary">Summary</a> · <a href="#factors">Factor analysis</a> · '
        '<a href="#optuna-views">Optuna\'s views</a></nav></header>'
    )


def _studies_word(studies: list[optuna.Study]) -> str:
    return "Study" if len(studies) == 1 else "Studies"


def _summary_html(summary: SummaryInfo) -> str:
    counts = summary.counts
    saved = summary.epochs_without_pruning - summary.epochs_trained
    best = summary.best
    best_text = (
        f"trial {best.number}: {VAL_TOP1} {best.value:.2%} with " + _settings_html(best.factors)
        if best
        else "no complete trial yet"
    )
    return (
        f'<article class="study-summary"><h3>Study {escaped(summary.study)}</h3><dl>'
        f'<dt>Best</dt><dd class="best">{best_text}</dd>'
        "<dt>Best trial's settings</dt>"
        f"<dd><code>{_settings_html(summary.best_settings)}</code></dd>"
        f'<dt>Trials</dt><dd class="counts">{counts["complete"]} complete, '
        f"{counts['pruned']} pruned, {_paused_text(counts)}"
        f"{counts['fail']} failed, {_stopped_text(counts)}{_running_text(counts)}, "
        f"{counts['waiting']} waiting</dd>"
        f'<dt>Epochs</dt><dd class="epochs">{summary.epochs_trained} trained, against '
        f"{summary.epochs_without_pruning} with every trial run to its last epoch "
        f"({saved} saved by pruning{_share(saved, summary.epochs_without_pruning)})</dd>"
        f'<dt>Compute</dt><dd class="compute">{_compute_text(summary)}</dd></dl>'
        f"{_top_table(summary)}</article>"
    )


def _compute_text(summary: SummaryInfo) -> str:
    """Epochs trained with no time recorded (another tool's study): not known, rather than 0 s."""
    if summary.compute_seconds == 0 and summary.epochs_trained > 0:
        return "not recorded by these trials"
    return f"{format_seconds(summary.compute_seconds)} of training and evaluation"


def _running_text(counts: dict[str, int]) -> str:
    """A report made mid-search draws and counts the trials that ended: it says the rest wait."""
    running = counts["running"]
    return f"{running} running (drawn and counted once they end)" if running else "0 running"


def _paused_text(counts: dict[str, int]) -> str:
    """asha's pauses, only where there were any."""
    if not counts["paused"] and not counts["promoted"]:
        return ""
    return f"{counts['paused']} paused and not promoted, {counts['promoted']} promoted, "


def _stopped_text(counts: dict[str, int]) -> str:
    """Trials cut short (a signal, a dead worker) and queued to resume, only where there were any:
    Optuna's views draw them as FAIL, which they are not."""
    if not counts["stopped"]:
        return ""
    return f"{counts['stopped']} stopped (each resumes from its checkpoint as a retry), "


def _share(saved: int, planned: int) -> str:
    return f", {saved / planned:.0%}" if planned else ""


def _settings_html(settings: dict[str, Any]) -> str:
    """settings_text's line, each `name=value` kept whole: a narrow page breaks between settings,
    never inside one (`cosi|ne`, `6.06e-|09`)."""
    return ", ".join(
        f'<span class="setting">{escaped(settings_text({name: value}))}</span>'
        for name, value in settings.items()
        if value is not None
    )


def _seconds_cell(seconds: float | None) -> str:
    return "not recorded" if seconds is None else f"{seconds:.1f}"


def _top_table(summary: SummaryInfo) -> str:
    if not summary.top:
        return '<p class="note">No complete trial to rank yet.</p>'
    head = "".join(
        f"<th>{name}</th>" for name in ("rank", "trial", VAL_TOP1, *FACTORS, "epochs", "seconds")
    )
    rows = []
    for rank, row in enumerate(summary.top, start=1):
        factors = "".join(
            f"<td>{escaped(format_setting(name, row.factors.get(name, '')))}</td>"
            for name in FACTORS
        )
        rows.append(
            f"<tr><td>{rank}</td><td>{row.number}</td><td>{row.value:.2%}</td>{factors}"
            f"<td>{row.epochs_run}</td><td>{_seconds_cell(row.seconds)}</td></tr>"
        )
    # Cells never wrap, so a narrow window scrolls the table rather than the page
    return (
        '<div class="table-scroll"><table class="top-trials">'
        f"<caption>Top {len(summary.top)} complete trials</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; \
max-width: 1200px;
       padding: 1rem 2rem; color: #222; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: .2rem; margin-top: 2.5rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
th, td { border: 1px solid #ddd; padding: .2rem .6rem; text-align: right; white-space: nowrap; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
.figure { width: 100%; height: 520px; }
.caution, .basis, .one-value { color: #555; font-size: .9em; margin: 0 0 1rem; }
.note { color: #8a5a00; background: #fff7e6; border-left: 4px solid #f0b429; padding: .4rem .8rem; }
code { background: #f4f4f4; padding: 0 .2rem; overflow-wrap: anywhere; }
.setting { white-space: nowrap; }
.table-scroll { overflow-x: auto; }
"""

# Plotly is told MathJax is local (absent) so that it
# never tries to load it; the figures hold no LaTeX.
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
    done.textContent = {drawn};
    document.body.appendChild(done);
  }}, function (error) {{
    document.body.setAttribute("data-figure-error", String(error));
  }});
}})();
</script>
</body>
</html>
"""
