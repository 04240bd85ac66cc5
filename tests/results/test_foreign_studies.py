"""Studies that plain Optuna made in the same storage as a project's study: several objectives, an
objective minimized, no settings recorded. `status` shows the studies hpsearch reads and names
those it skips; a command that names one it cannot read says why in one line, exit 2; none of
them crashes."""

from __future__ import annotations

import csv
import io
import json

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

import search
from search.errors import StudyMismatchError
from tests.helpers.cli import listing, run_cli
from tests.helpers.studies import write_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TWO_OBJECTIVES = "study 'mo' has 2 objectives; hpsearch reads single-objective studies"
MINIMIZES = "study 'mini' minimizes its objective; hpsearch reads studies that maximize val top-1"


@pytest.fixture(scope="module")
def mixed(small_search, tmp_path_factory) -> str:
    """A storage holding the project's study beside three that plain Optuna made; the tests only
    read it (a report of 'plain' attaches its note)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('mixed') / 'mixed.db'}"
    optuna.copy_study(
        from_study_name=small_search.study, from_storage=small_search.url, to_storage=url
    )
    several = optuna.create_study(study_name="mo", storage=url, directions=["maximize", "minimize"])
    several.optimize(lambda trial: (trial.suggest_float("x", 0, 1), 0.5), n_trials=3)
    minimized = optuna.create_study(study_name="mini", storage=url, direction="minimize")
    minimized.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    plain = optuna.create_study(study_name="plain", storage=url, direction="maximize")
    plain.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    return url


def test_status_shows_the_studies_it_reads_and_names_those_it_skips(mixed, small_search, capsys):
    status, out, err = run_cli(capsys, "status", "--storage", mixed)

    assert status == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:3]] == [small_search.study, "plain"]
    assert "mo " not in out and "mini " not in out
    assert err.splitlines() == [
        f"hpsearch: {TWO_OBJECTIVES}: skipped",
        f"hpsearch: {MINIMIZES}: skipped",
    ]

    status, out, err = run_cli(capsys, "status", "--json", "--storage", mixed)

    assert status == 0, err
    assert [row["study"] for row in json.loads(out)] == [small_search.study, "plain"]
    assert len(err.splitlines()) == 2


def test_a_storage_of_studies_it_skips_only_says_none_it_can_read(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'mini.db'}"
    minimized = optuna.create_study(study_name="mini", storage=url, direction="minimize")
    minimized.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)

    status, out, err = run_cli(capsys, "status", "--storage", url)

    assert status == 0, err
    # Not "no studies in this storage" under a line naming the one skipped
    assert out == "no studies hpsearch can read in this storage\n"
    assert err.splitlines() == [f"hpsearch: {MINIMIZES}: skipped"]
    assert str(search.status(storage=url)).splitlines() == [
        "no studies hpsearch can read in this storage",
        f"{MINIMIZES}: skipped",
    ]


def test_the_api_status_says_which_studies_it_skipped(mixed, small_search, capsys):
    found = search.status(storage=mixed)

    assert [row["study"] for row in found.rows] == [small_search.study, "plain"]
    assert found.skipped == [f"{TWO_OBJECTIVES}: skipped", f"{MINIMIZES}: skipped"]
    assert str(found).splitlines()[-2:] == found.skipped  # a notebook sees them under the table
    assert capsys.readouterr() == ("", "")  # returned, not printed
    with pytest.raises(StudyMismatchError, match=MINIMIZES):
        search.status("mini", storage=mixed)


@pytest.mark.parametrize(
    ("command", "expect"),
    [
        ("status --study mo", TWO_OBJECTIVES),
        ("status --study mini", MINIMIZES),
        ("report --study mo -o r.html", TWO_OBJECTIVES),
        ("report --study factors --study mo -o r.html", TWO_OBJECTIVES),
        ("report --study mini -o r.html", MINIMIZES),
        ("export --study mo -o best.json", TWO_OBJECTIVES),
        ("export --study mini", MINIMIZES),
        ("trials --study mo", TWO_OBJECTIVES),
        ("worker --study mo --device cpu", TWO_OBJECTIVES),
        ("run --study mini --device cpu", MINIMIZES),
        ("run {file_mo} --device cpu", TWO_OBJECTIVES),
        ("run {file_mini} --device cpu", MINIMIZES),
        # Plain Optuna's own kind of study: read where it can be, refused where it needs settings
        ("export --study plain", "records no training config"),
        ("worker --study plain --device cpu", "recorded their settings"),
    ],
)
def test_a_study_named_that_hpsearch_cannot_read_is_one_line_exit_2_and_writes_nothing(
    mixed, small_search, tmp_path, capsys, command, expect
):
    files = {
        f"file_{name}": write_study(tmp_path, small_search.images, name=name)
        for name in ("mo", "mini")
    }
    before = listing(tmp_path)

    status, out, err = run_cli(capsys, *command.format(**files).split(), "--storage", mixed)

    assert status == 2, err
    assert "Traceback" not in out + err
    [line] = err.strip().splitlines()
    assert line.startswith("hpsearch: error: ") and expect in line, line
    assert listing(tmp_path) == before  # no page, no settings, nothing decoded


def test_a_plain_optuna_study_that_maximizes_is_reported(mixed, tmp_path, capsys):
    status, out, err = run_cli(
        capsys, "report", "--study", "plain", "-o", "r.html", "--storage", mixed
    )

    assert status == 0, err
    assert "Traceback" not in out + err
    assert "plain" in (tmp_path / "r.html").read_text()


# Another tool's study: parameters named as the table's own columns, and an lr that is a choice of
# names where the report's lr figures expect a number
CLASHING = {
    "state": FloatDistribution(0, 1),
    "trial": IntDistribution(0, 100),
    "seconds": FloatDistribution(0, 10),
    "epochs_run": IntDistribution(1, 9),
    "param_state": FloatDistribution(0, 1),
    "lr": CategoricalDistribution(("fast", "slow")),
}


@pytest.fixture(scope="module")
def clashing(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('clashing') / 'clashing.db'}"
    study = optuna.create_study(study_name="clash", storage=url, direction="maximize")
    for number in range(3):
        params = {
            "state": 0.25 * number,
            "trial": 40 + number,
            "seconds": 1.5 * number,
            "epochs_run": 7,
            "param_state": 0.5,
            "lr": ("fast", "slow")[number % 2],
        }
        study.add_trial(
            create_trial(
                value=0.1 * (number + 1),
                params=params,
                distributions=CLASHING,
                intermediate_values={1: 0.1 * number, 2: 0.1 * (number + 1)},
            )
        )
    return url


def test_parameters_named_as_the_tables_columns_overwrite_none_of_them(clashing, capsys):
    status, out, err = run_cli(capsys, "trials", "--study", "clash", "--storage", clashing)

    assert status == 0, err
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    header = list(rows[0])
    assert len(header) == len(set(header))
    assert [(row["trial"], row["state"]) for row in rows] == [
        ("0", "complete"),
        ("1", "complete"),
        ("2", "complete"),
    ]
    assert [row["epochs_run"] for row in rows] == ["2", "2", "2"], "the epochs each reported"
    assert [row["seconds"] for row in rows] == ["", "", ""], "no time recorded"
    # Each parameter in a column of its own, as Optuna's trials_dataframe names them
    assert [row["param_trial"] for row in rows] == ["40", "41", "42"]
    assert [row["param_state"] for row in rows] == ["0.0", "0.25", "0.5"]
    assert [row["param_seconds"] for row in rows] == ["0.0", "1.5", "3.0"]
    assert [row["param_epochs_run"] for row in rows] == ["7", "7", "7"]
    assert [row["param_param_state"] for row in rows] == ["0.5", "0.5", "0.5"]
    assert [row["lr"] for row in rows] == ["fast", "slow", "fast"]
    assert search.trials("clash", storage=clashing)[1]["param_trial"] == 41  # the API's rows too


@pytest.mark.parametrize(
    ("lr", "scale"),
    [
        # names, where lr is a number on a log scale
        (CategoricalDistribution(("fast", "slow")), "categorical"),
        # a number, but from 0, which a log scale has no place for
        (FloatDistribution(0.0, 1.0), "linear"),
    ],
)
def test_a_study_whose_lr_is_not_a_positive_number_is_reported(tmp_path, capsys, lr, scale):
    url = f"sqlite:///{tmp_path / 'lr.db'}"
    study = optuna.create_study(study_name="odd-lr", storage=url, direction="maximize")
    values = ("fast", "slow", "fast") if scale == "categorical" else (0.0, 0.5, 1.0)
    for number, value in enumerate(values):
        study.add_trial(
            create_trial(
                value=0.1 * (number + 1),
                params={"lr": value},
                distributions={"lr": lr},
                intermediate_values={1: 0.1 * (number + 1)},
            )
        )

    status, out, err = run_cli(
        capsys, "report", "--study", "odd-lr", "-o", tmp_path / "r.html", "--storage", url
    )

    assert status == 0, err
    assert "Traceback" not in out + err and "learning rate" not in out.lower(), "lr drawn"
    figures = search.report_figures("odd-lr", storage=url)
    curves, effect = figures["factor-lr-curves"], figures["factor-lr-effect"]
    if scale == "categorical":  # one line per trial, a legend entry and a box per name
        assert [trace.name for trace in curves.data if trace.showlegend] == ["fast", "slow"]
        assert [trace.name for trace in effect.data] == ["fast", "slow"]
    else:
        assert effect.layout.xaxis.type == "linear" and tuple(effect.layout.xaxis.range)[0] < 0


@pytest.mark.parametrize("value", [float("inf"), 70.0], ids=["infinite", "in percent"])
def test_a_study_whose_values_are_no_fractions_is_skipped_and_refused(tmp_path, capsys, value):
    # Optuna stores an infinite value, which was ranked best (and written `Infinity`, which JSON
    # has not); another tool's accuracy in percent read 7000.00%, every figure empty
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    study = optuna.create_study(study_name="odd", storage=url, direction="maximize")
    for fine in (0.4, 0.6):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=fine))
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=value))
    reason = f"study 'odd' has a value outside 0 to 1 (trial 2: {value!r}); hpsearch reads a study"

    status, out, err = run_cli(capsys, "status", "--json", "--storage", url)
    assert status == 0, err
    assert json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} is no JSON")) == []
    assert err.startswith(f"hpsearch: {reason}") and err.endswith(": skipped\n"), err

    status, out, err = run_cli(capsys, "report", "--study", "odd", "--storage", url, "-o", "r.html")
    assert status == 2 and err.startswith(f"hpsearch: error: {reason}"), err
    assert not (tmp_path / "r.html").exists()


def test_epochs_another_tool_trained_without_recording_their_time_are_not_said_to_take_0_s(
    clashing,
):
    from search.results.page import build_report

    study = optuna.load_study(study_name="clash", storage=clashing)
    page = build_report([study]).html

    assert '<dd class="compute">not recorded by these trials</dd>' in page
