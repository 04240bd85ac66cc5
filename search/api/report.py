"""The report from Python: its figures as Plotly objects to show in a notebook, or the whole page
written to a file, as `hpsearch report` writes it."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import optuna
import plotly.graph_objects as go

from search import locations
from search.api.studies import open_studies
from search.results import output_file
from search.results.page import Report, build_report
from search.results.report_views import draw_views
from search.serve.artifacts import check_artifact_folder, make_artifact_folder
from search.serve.notes import attach_report
from search.study.optuna_compat import storage_of
from search.study.writable import NOTE_TABLES, refused_write
from search.url_secrets import masked
from trainer.naming import named
from trainer.outputs import check_output_file


def report_figures(
    studies: str | Iterable[str], *, storage: str | None = None
) -> dict[str, go.Figure]:
    """The report's figures of one study (a name) or several (the factor figures pool their
    trials), by key, in the report's order: `factor-lr-curves`, `factor-lr-effect`, ... for each
    factor the trials set to more than one value, then Optuna's views of each study
    (`NAME-history`, `NAME-slice`, `NAME-timeline`, ...; NAME is the study's name as a slug,
    `NAME-2` for a second study whose name makes the same one). Each is a
    `plotly.graph_objects.Figure`: `.show()` draws it in a notebook. A view the study cannot
    support yet (importances before 11 complete trials, say) is left out, as the report leaves it
    out; `write_report` says why."""
    views = draw_views(open_studies(_names(studies), storage=storage))  # the figures, no page
    return {figure.key: figure.figure for figure in views.figures}


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
    with the best trial on the study's note; a storage that refuses writes still gets its page, and
    a warning on standard error says the dashboard goes without it. Returns what it drew: `.drawn`
    (how many figures), `.not_drawn` (each view left out, and why), `.figures`."""
    path = Path(path)
    check_output_file(path, named("path"), "report.html")  # before the storage is opened
    # Both before a folder is made or the storage opened
    figures = " (PNG files of its figures: `hpsearch report --png-dir DIR`)"
    output_file.check_page_name(path, named("path"), "the report", figures)
    url = locations.storage_url(storage)
    chosen = open_studies(_names(studies), storage=storage)
    # A reader who may not write the storage still gets the page; only the dashboard's copy and
    # note are left out, and said so
    refusal = refused_write(storage_of(chosen[0]), NOTE_TABLES) if chosen else None
    folder = locations.artifact_dir(url, artifacts)
    if refusal is None:
        # Checked only where the copy will be made (a reader's page needs no folder), and made
        # before the page is drawn or written: a folder that cannot be one is met before either
        check_artifact_folder(folder)
        make_artifact_folder(folder)
    report = build_report(chosen, storage_label=masked(url))
    output_file.write_text(path, report.html, named("path"))  # whole, or the earlier page stays
    if refusal is not None:
        print(
            f"hpsearch: warning: {path} is not attached to {_studies(chosen)} for the dashboard: "
            f"storage {masked(url)} refuses writes: {refusal}",
            file=sys.stderr,
        )
        return report
    for study in chosen:  # the team finds the latest report in the dashboard, on the study's note
        attach_report(study, path, folder)
    return report


def _names(studies: str | Iterable[str]) -> list[str]:
    return [studies] if isinstance(studies, str) else list(studies)


def _studies(studies: list[optuna.Study]) -> str:
    names = ", ".join(repr(study.study_name) for study in studies)
    return f"study {names}" if len(studies) == 1 else f"studies {names}"
