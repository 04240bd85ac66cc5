"""`hpsearch report`: the collectors on a small real search, the figures drawn from them, and the
page."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
from optuna.trial import TrialState
from plotly.offline import get_plotlyjs

import search
from search.cli import main
from search.errors import ConfigError
from search.results import figures, png
from search.results.page import build_report
from search.results.report_data import (
    FACTORS,
    OPTUNA_VIEWS,
    get_factor_info,
    get_summary_info,
    trial_curves,
    view_obstacle,
)
from search.study.recorded import find_study
from search.study.storage import open_storage
from tests.helpers.cli import listing, run_cli
from tests.helpers.dashboard import make_study
from tests.helpers.small_search import EPOCHS, HOSTILE_STUDY

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def studies(small_search):
    storage = open_storage(small_search.url)
    return [find_study(storage, small_search.study), find_study(storage, small_search.hostile)]


@pytest.fixture(scope="module")
def report(studies):
    return build_report(studies, storage_label="sqlite:///studies.db")


def test_the_small_search_has_complete_pruned_and_failed_trials(studies):
    states = [trial.state for trial in studies[0].trials]
    assert {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL} <= set(states), states


def test_the_summary_counts_trials_epochs_and_compute(studies):
    study = studies[0]
    trials = study.trials
    summary = get_summary_info(study)
    for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
        assert summary.counts[state.name.lower()] == sum(trial.state == state for trial in trials)
    assert summary.best.number == study.best_trial.number and summary.best.value == study.best_value
    assert summary.best_settings == study.best_trial.user_attrs["config"]
    assert summary.epochs_trained == sum(trial.user_attrs["epochs_run"] for trial in trials)
    # Every trial to its last epoch, but a failed one, which fails as it did without pruning
    unpruned = [
        trial.user_attrs["epochs_run"] if trial.state == TrialState.FAIL else EPOCHS
        for trial in trials
    ]
    assert summary.epochs_without_pruning == sum(unpruned)
    assert summary.epochs_without_pruning > summary.epochs_trained  # pruning saved epochs
    # Trained alone, each trial's epochs (their seconds as recorded to the ms)
    assert summary.compute_seconds == pytest.approx(
        sum(trial.user_attrs.get("seconds", 0) for trial in trials), abs=1e-3 * len(trials)
    )
    values = [row.value for row in summary.top]
    assert values == sorted(values, reverse=True) and len(values) == summary.counts["complete"]


def test_each_factor_has_a_curve_per_trial_that_sets_it_fixed_ones_included(studies):
    study = studies[0]
    curves = trial_curves([study])
    configs = {trial.number: trial.user_attrs["config"] for trial in study.trials}
    for factor in FACTORS:
        info = get_factor_info(curves, factor)
        expected = sorted(
            number for number, config in configs.items() if config[factor] is not None
        )
        assert sorted(curve.number for curve in info.curves) == expected, factor
    # Fixed by the points, not sampled
    assert not any("eps" in trial.params for trial in study.trials)
    assert get_factor_info(curves, "eps").levels == (1e-8,)
    assert get_factor_info(curves, "momentum").levels == (0.0, 0.9)
    failed = [curve for curve in curves if curve.state == "fail"]
    assert len(failed) == 1 and failed[0].epochs == () and "non-finite" in failed[0].fail_reason


def test_factor_curves_draw_one_trace_per_trial_and_mark_where_trials_stopped(studies):
    curves = trial_curves(studies)
    for factor in FACTORS:
        info = get_factor_info(curves, factor)
        figure = figures.factor_curves_figure(info)
        assert len(figure.data) == len(info.curves) > 0
        for trace, curve in zip(figure.data, info.curves):
            assert (trace.meta["study"], trace.meta["trial"]) == (curve.study, curve.number)
            last_symbol = trace.marker.symbol[-1]
            assert last_symbol == {"pruned": "triangle-down", "fail": "x"}.get(
                curve.state, "circle"
            )
    lr = figures.factor_curves_figure(get_factor_info(curves, "lr"))
    assert lr.data[0].marker.colorbar.ticktext[0] == "1e-5" and lr.data[0].marker.showscale
    optimizer = figures.factor_curves_figure(get_factor_info(curves, "optimizer"))
    assert sorted(trace.name for trace in optimizer.data if trace.showlegend) == ["adam", "sgd"]


def test_factor_effects_are_boxes_by_level_or_a_log_axis(studies):
    curves = trial_curves(studies[:1])
    optimizer = figures.factor_effect_figure(get_factor_info(curves, "optimizer"))
    assert [trace.type for trace in optimizer.data] == ["box", "box"]
    complete = [curve for curve in curves if curve.state == "complete"]
    assert sum(len(trace.y) for trace in optimizer.data) == len(complete)
    lr = figures.factor_effect_figure(get_factor_info(curves, "lr"))
    assert lr.layout.xaxis.type == "log"
    assert sorted(x for trace in lr.data for x in trace.x) == sorted(
        curve.factors["lr"] for curve in complete
    )
    assert (
        figures.factor_effect_figure(get_factor_info(curves, "momentum")).layout.xaxis.type
        == "linear"
    )


def test_a_view_that_cannot_be_drawn_says_why(studies, tmp_path):
    study = studies[0]
    assert view_obstacle(study, "history") is None and view_obstacle(study, "timeline") is None
    assert "lr against eps" in view_obstacle(study, "contour_lr_eps")  # eps is fixed, not sampled
    empty = optuna.create_study(study_name="empty", storage=f"sqlite:///{tmp_path / 'empty.db'}")
    assert all(view_obstacle(empty, view) for view in OPTUNA_VIEWS)
    note = figures.optuna_view(empty, "importance")
    assert isinstance(note, figures.Note) and "no complete trial" in note.reason


def test_the_page_has_every_section_each_figure_and_a_note_for_each_missing_view(report, studies):
    page = report.html
    for section in ("summary", "factors", "optuna-views"):
        assert f'<section id="{section}">' in page
    assert (
        page.count('<div class="figure"')
        == len(report.figures)
        == int(re.search(r'data-figures="(\d+)"', page).group(1))
    )
    factor_keys = [figure.key for figure in report.figures if figure.key.startswith("factor-")]
    # eps (1e-8 in every adam point) and the model took one value: said once, not drawn
    assert factor_keys == [
        f"factor-{factor}-{kind}"
        for factor in ("optimizer", "lr", "momentum")
        for kind in ("curves", "effect")
    ]
    assert '<p class="one-value">eps was 1e-08 in every trial that sets it: not drawn.</p>' in page
    optuna_figures = len(report.figures) - len(factor_keys)
    assert optuna_figures + len(report.notes) == len(OPTUNA_VIEWS) * len(studies)
    assert page.count('<p class="note">') == len(report.notes) > 0
    counts = get_summary_info(studies[0]).counts
    assert (
        f"{counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed" in page
    )
    assert page.count('<table class="top-trials">') == len(studies)


def test_the_page_needs_no_network_and_embeds_plotly_once(report):
    page = report.html
    assert page.count(get_plotlyjs()[:500]) == 1
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=", page)
    assert "MathJax.js" not in page.replace(get_plotlyjs(), "")


def test_user_text_is_escaped_everywhere(report):
    page = report.html
    assert HOSTILE_STUDY not in page and "<img" not in page.replace(get_plotlyjs(), "")
    assert "<h3>Study &lt;script&gt;alert(1)&lt;/script&gt;</h3>" in page
    lines = [
        trace
        for figure in report.figures
        for trace in figure.figure.data
        if getattr(trace, "meta", None) and trace.meta["study"] == HOSTILE_STUDY
    ]
    assert lines and all(
        HOSTILE_STUDY not in text and "&lt;script&gt;" in text
        for trace in lines
        for text in trace.text
    )
    assert any("&lt;img src=y" in text for trace in lines for text in trace.text)  # the fail reason


def test_the_cli_writes_the_report_and_names_a_missing_study(small_search, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert (
        main(
            ["report", "--storage", small_search.url, "--study", small_search.study, "-o", str(out)]
        )
        == 0
    )
    assert out.read_text().count('<div class="figure"') >= 8 and "wrote" in capsys.readouterr().out
    note = optuna_dashboard.get_note(
        optuna.load_study(study_name=small_search.study, storage=small_search.url)
    )
    # The dashboard links the report
    assert note.count("## Report") == 1 and "[report.html](" in note
    assert (
        main(
            [
                "report",
                "--storage",
                small_search.url,
                "--study",
                "nope",
                "-o",
                str(tmp_path / "x.html"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "no study named 'nope'" in err and "'factors'" in err and not (tmp_path / "x.html").exists()
    )


def test_png_export_without_a_browser_is_refused_before_anything_is_written(
    small_search, tmp_path, capsys, monkeypatch
):
    # The page, its dashboard copy and the study's note were written, then the run exited 1
    monkeypatch.setattr(png, "png_obstacle", lambda: "PNG export needs a Chrome or Chromium")
    out = tmp_path / "report.html"
    status = main(
        [
            "report",
            "--storage",
            small_search.url,
            "--study",
            small_search.study,
            "-o",
            str(out),
            "--png-dir",
            str(tmp_path / "png"),
        ]
    )
    assert status == 2 and "--png-dir: PNG export needs a Chrome" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "png").exists()


@pytest.mark.browser
@pytest.mark.skipif(png.png_obstacle() is not None, reason="kaleido or a Chrome is missing")
def test_png_export_writes_png_files(report, tmp_path):
    written = png.write_pngs(report.figures[:2], tmp_path / "png")
    assert [path.name for path in written] == [
        "00-factor-optimizer-curves.png",
        "01-factor-optimizer-effect.png",
    ]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in written)


@pytest.fixture
def plain(tmp_path) -> str:
    """A storage holding a small study that plain Optuna made, 'plain': enough for a report and its
    copy for the dashboard, made in a second."""
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    make_study(url, name="plain")
    return url


NO_PROC = pytest.mark.skipif(not Path("/proc").is_dir(), reason="no /proc here")


@pytest.mark.parametrize(
    ("flag", "environment", "expect"),
    [
        ("{a_file}", None, "artifact folder {a_file} is a file, not a folder"),
        ("{a_file}/sub", None, "{a_file} is a file, not a folder"),
        (None, "{a_file}", "artifact folder {a_file} is a file, not a folder"),
        # Writable to root by its permissions, yet no folder can be made there
        pytest.param(
            "/proc/hpsearch-artifacts",
            None,
            "artifact folder /proc/hpsearch-artifacts",
            marks=NO_PROC,
        ),
    ],
)
def test_an_artifact_folder_that_cannot_be_one_is_refused_before_the_page_is_written(
    plain, tmp_path, monkeypatch, capsys, flag, environment, expect
):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPSEARCH_ARTIFACTS", raising=False)
    if environment is not None:
        monkeypatch.setenv("HPSEARCH_ARTIFACTS", environment.format(a_file=a_file))
    artifacts = [] if flag is None else ["--artifacts", flag.format(a_file=a_file)]
    before = listing(tmp_path)

    status, out, err = run_cli(
        capsys, "report", "--study", "plain", "--storage", plain, "-o", "r.html", *artifacts
    )

    assert status == 2, err
    [line] = err.splitlines()
    assert line.startswith("hpsearch: error: ") and expect.format(a_file=a_file) in line, line
    assert "choose it with --artifacts or $HPSEARCH_ARTIFACTS" in line
    assert listing(tmp_path) == before  # no page, no folder


def test_the_api_names_its_artifacts_keyword(plain, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")

    with pytest.raises(ConfigError, match=r"is a file.*choose it with artifacts or \$HPSEARCH_"):
        search.write_report("plain", tmp_path / "r.html", storage=plain, artifacts=a_file)
    assert not (tmp_path / "r.html").exists()
