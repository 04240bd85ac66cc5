"""Studies that plain Optuna made in the same storage as a project's study: several objectives, an
objective minimized, no settings recorded. `status` shows the studies hpsearch reads and names
those it skips; a command that names one it cannot read says why in one line, exit 2; none of
them crashes."""

from __future__ import annotations

import json

import optuna
import pytest

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
