"""Figures that stay legible with 1, 3 or 50 trials: studies of made trials (as a worker records
them), their reports drawn in headless Chromium, and the tick labels read back from the SVG that
Plotly drew. Screenshots of the three reports are kept under tests/artifacts/."""

from __future__ import annotations

import re
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple

import optuna
import pytest
from optuna.trial import create_trial

from search import attrs
from search.cli import main
from search.results import figures
from search.results.axes import log_ticks, number_text, trial_ticks
from search.results.page import build_report
from search.results.report_data import get_factor_info, get_summary_info, trial_curves
from tests.helpers.made_trials import made_study, one_sgd_trial_study
from tests.results.test_report_browser import ARTIFACTS, CHROMIUM, chromium

SIZES = (1, 3, 50)


class Made(NamedTuple):
    url: str
    studies: dict[int, optuna.Study]  # by number of trials


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Made:
    """The three studies: one SGD trial whose val top-1 stays within a point; three trials of a
    short search whose curves lie close together; fifty, pruned and failed ones among them."""
    url = f"sqlite:///{tmp_path_factory.mktemp('made') / 'made.db'}"
    return Made(
        url,
        {
            1: one_sgd_trial_study(url, "one-trial"),
            3: made_study(url, "three-trials", 3, spread=0.02, seed=3),
            50: made_study(url, "fifty-trials", 50, seed=5),
        },
    )


def test_one_trial_is_placed_within_its_space_not_at_the_centre_of_a_made_up_range(made):
    curves = trial_curves([made.studies[1]])
    momentum = get_factor_info(curves, "momentum")
    assert momentum.bounds == (0.0, 0.99)  # the space, not 0.0703 +- 0.5
    curve_figure = figures.factor_curves_figure(momentum)
    marker = curve_figure.data[0].marker
    assert (marker.cmin, marker.cmax) == (0.0, 0.99)
    effect = figures.factor_effect_figure(momentum)
    low, high = effect.layout.xaxis.range
    assert -0.05 < low < 0 and 0.99 < high < 1.05
    lr = figures.factor_effect_figure(get_factor_info(curves, "lr"))
    assert lr.layout.xaxis.type == "log" and lr.layout.xaxis.ticktext == (
        "1e-4",
        "0.001",
        "0.01",
        "0.1",
        "1",
    )
    # val top-1 in percent, never drawn below 0 % or above 100 %
    assert curve_figure.data[0].y[-1] == pytest.approx(14.26)
    assert effect.layout.yaxis.autorangeoptions.clipmin == 0
    assert effect.layout.yaxis.autorangeoptions.clipmax == 100


def test_a_fixed_factor_spans_a_decade_around_its_one_value(tmp_path):
    # A points study fixes eps for every adam point: it is in the config, not in the params
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'fixed.db'}", direction="maximize")
    for lr in (1e-3, 1e-2):
        config = {"optimizer": "adam", "lr": lr, "eps": 1e-8, "epochs": 1}
        study.add_trial(
            create_trial(value=0.5, intermediate_values={1: 0.5}, user_attrs={"config": config})
        )
    eps = get_factor_info(trial_curves([study]), "eps")
    assert eps.bounds == (1e-8, 1e-8)
    axis = figures.factor_effect_figure(eps).layout.xaxis
    assert axis.range == (-9.0, -7.0) and axis.ticktext == ("1e-8",)


@pytest.mark.parametrize(
    "low, high, labels",
    [
        (1e-3, 5e-3, ["0.001", "0.002", "0.005"]),  # within a decade: 1, 2, 5
        (1e-4, 1e-2, ["1e-4", "2e-4", "5e-4", "0.001", "0.002", "0.005", "0.01"]),
        (1e-9, 1e-3, ["1e-9", "1e-8", "1e-7", "1e-6", "1e-5", "1e-4", "0.001"]),
    ],
)
def test_log_ticks_label_enough_values_to_read_a_span(low, high, labels):
    assert log_ticks(low, high)["ticktext"] == labels


@pytest.mark.parametrize(
    "value, text",
    [(0.07032569761590807, "0.0703"), (6.06e-09, "6.06e-9"), (1e-4, "1e-4"), (0.99, "0.99")],
)
def test_numbers_are_written_with_three_significant_digits(value, text):
    assert number_text(value) == text


def test_tables_show_three_significant_digits_and_keep_the_exact_value_stored(made):
    summary = get_summary_info(made.studies[1])
    assert attrs.settings_text(summary.best.factors) == (
        "optimizer=sgd, lr=0.0123, momentum=0.0703, model=resnet18"
    )
    trial = made.studies[1].trials[0]
    assert trial.user_attrs[attrs.CONFIG]["momentum"] == 0.07032569761590807


class TickLabels(HTMLParser):
    """Tick labels per figure (its data-key) and per axis or colour bar, as Plotly drew them:
    each label is a <g class="xtick|x2tick|ytick|y<colourbar>tick"><text> in the figure's SVG."""

    def __init__(self) -> None:
        super().__init__()
        self.figure = ""
        self.labels: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.axis: str | None = None  # the tick group being read
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "div" and values.get("data-key"):
            self.figure = values["data-key"]
        tick = re.fullmatch(r"[xy]\w*tick", values.get("class") or "")
        if tag == "g" and tick:
            self.axis, self.text = tick.group(), []

    def handle_data(self, data: str) -> None:
        if self.axis is not None:
            self.text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "g" and self.axis is not None:
            label = " ".join("".join(self.text).split())
            if label:
                self.labels[(self.figure, self.axis)].append(label)
            self.axis = None


@pytest.fixture(scope="module")
def drawn(made, tmp_path_factory) -> dict[int, TickLabels]:
    """Each report written by `hpsearch report`, drawn in Chromium; its screenshot kept."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    folder = tmp_path_factory.mktemp("drawn")
    ARTIFACTS.mkdir(exist_ok=True)
    ticks = {}
    for size, study in made.studies.items():
        page = folder / f"report-{size}.html"
        argv = ["report", "--storage", made.url, "--study", study.study_name, "-o", str(page)]
        assert main([*argv, "--artifacts", str(folder / "artifacts")]) == 0
        shot = ARTIFACTS / f"report-{size}-trials.png"
        run = chromium(  # one load: the DOM as drawn, and the screenshot a person looks at
            page,
            folder / "profile",
            "--virtual-time-budget=15000",
            "--hide-scrollbars",
            "--window-size=1400,12000",
            f"--screenshot={shot}",
            "--dump-dom",
        )
        assert run.returncode == 0 and "report-drawn" in run.stdout, run.stderr[-2000:]
        assert shot.read_bytes().startswith(b"\x89PNG")
        ticks[size] = TickLabels()
        ticks[size].feed(run.stdout)
    return ticks


@pytest.mark.parametrize("size", SIZES)
def test_every_axis_of_every_figure_has_distinct_tick_labels(drawn, size):
    labels = drawn[size].labels
    factor_axes = [key for key in labels if key[0].startswith("factor-")]
    # One trial varies nothing: the page says so in place of figures of one value each
    assert len(factor_axes) >= 6 if size > 1 else not factor_axes, sorted(
        labels
    )  # curves and effects: x, y and colour bars
    repeated = {key: ticks for key, ticks in labels.items() if len(set(ticks)) < len(ticks)}
    assert not repeated


@pytest.mark.parametrize("size", SIZES)
def test_val_top1_is_never_ticked_below_zero(drawn, size):
    for (figure, axis), ticks in drawn[size].labels.items():
        if figure.startswith("factor-") and axis == "ytick":
            assert all(tick.endswith("%") and not tick.startswith("−") for tick in ticks), ticks


@pytest.mark.parametrize("size", SIZES)
def test_optunas_views_tick_val_top1_in_percent_as_the_factor_figures_do(drawn, made, size):
    key = figures.slug(made.studies[size].study_name)
    labels = drawn[size].labels
    for view in ("history", "intermediate"):
        ticks = labels[(f"{key}-{view}", "ytick")]
        assert ticks and all(tick.endswith("%") for tick in ticks), (view, ticks)
        assert len(set(ticks)) == len(ticks)


def test_one_trials_history_axis_shows_the_one_trial(drawn):
    labels = drawn[1].labels
    # The history's trial axis shows the one trial there is, not -1, -0.5, 0, 0.5 and 1
    assert labels[("one-trial-history", "xtick")] == ["0"]


def test_the_page_footer_says_what_the_command_said(made, tmp_path, capsys):
    page = tmp_path / "report.html"
    name = made.studies[3].study_name
    assert main(["report", "--storage", made.url, "--study", name, "-o", str(page)]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    said = re.search(r": (\d+ figures drawn, \d+ views? not drawn):?$", first_line)
    assert said and f'"{said.group(1)}."' in Path(page).read_text()


@pytest.mark.parametrize("trials, step", [(1, 1), (8, 1), (9, 2), (50, 10), (300, 50)])
def test_trial_numbers_are_ticked_in_round_whole_steps(trials, step):
    assert trial_ticks(range(trials)) == {"tick0": 0, "dtick": step}


def test_a_settings_line_breaks_between_settings_never_inside_one(made):
    page = build_report([made.studies[3]]).html
    assert ".setting { white-space: nowrap; }" in page
    assert '<span class="setting">schedule=cosine</span>, ' in page
    assert '<span class="setting">eps=6.06e-09</span>' in page
