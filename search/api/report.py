"""The report from Python: its figures as Plotly objects to show in a notebook, or the whole page
written to a file, as `hpsearch report` writes it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import optuna
import plotly.graph_objects as go

from search import locations
from search.api.studies import open_studies
from search.results.page import Report, build_report
from search.serve.notes import attach_report
from search.study.storage import masked


def report_figures(
    studies: str | Iterable[str], *, storage: str | None = None
) -> dict[str, go.Figure]:
    """The report's figures of one study (a name) or several (the factor figures pool their
    trials), by key, in the report's order: `factor-lr-curves`, `factor-lr-effect`, ... for each
    factor a trial sets, then Optuna's views of each study (`NAME-history`, `NAME-slice`,
    `NAME-timeline`, ...). Each is a `plotly.graph_objects.Figure`: `.show()` draws it in a
    notebook. A view the study cannot support yet (importances before 11 complete trials, say) is
    left out, as the report leaves it out; `write_report` says why."""
    return {figure.key: figure.figure for figure in _report(studies, storage)[1].figures}


def write_report(
    studies: str | Iterable[str],
    path: str | Path,
    *,
    storage: str | None = None,
    artifacts: str | Path | None = None,
) -> Report:
    """Write the report of one study or several to `path`: one self-contained HTML page that opens
    offline. The page is also attached to each study for the dashboard (under `artifacts`,
    default: $HPSEARCH_ARTIFACTS, else artifacts/ beside a SQLite file or in the current folder),
    with the best trial on the study's note. Returns what it drew: `.drawn` (how many figures),
    `.not_drawn` (each view left out, and why), `.figures`."""
    path = Path(path)
    opened, report = _report(studies, storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.html, encoding="utf-8")
    folder = locations.artifact_dir(locations.storage_url(storage), artifacts)
    for study in opened:  # the team finds the latest report in the dashboard, on the study's note
        attach_report(study, path, folder)
    return report


def _report(studies: str | Iterable[str], storage: str | None) -> tuple[list[optuna.Study], Report]:
    names = [studies] if isinstance(studies, str) else list(studies)
    opened = open_studies(names, storage=storage)
    return opened, build_report(opened, storage_label=masked(locations.storage_url(storage)))
