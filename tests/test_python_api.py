"""The Python API as a notebook uses it: a search run, read back, drawn, exported, and its best
trial trained again and scored, all in this process through `search`'s own names; and `import
search`, which must stay cheap (no torch, no Plotly) for the commands that only read a study.

The notebook flow below is the example on docs/reference/python-api.md."""

from __future__ import annotations

import csv
import inspect
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import plotly.graph_objects as go
import pytest
from optuna.trial import TrialState

import search
from search.errors import ConfigError, HpsearchError, SearchStopped, StudyNotFound
from search.run import objective
from search.studyfile.train_file import read_settings
from tests.helpers import ROOT
from tests.helpers.studies import write_study

STUDY = "notebook"


def test_a_notebook_runs_a_search_then_reads_draws_exports_retrains_and_scores_it(
    tmp_path: Path, image_folder: Path, cache_dir: Path, one_torch_thread, monkeypatch
):
    storage = f"sqlite:///{tmp_path / 'notebook.db'}"
    checkpoints = tmp_path / "checkpoints"
    # No pruner: both trials run to the end
    study_file = write_study(
        tmp_path, image_folder, name=STUDY, trials=2, epochs=1, pruner='kind = "none"'
    )
    options = {"device": "cpu", "cache_dir": cache_dir}

    study = search.run_study(
        study_file,
        storage=storage,
        image_size=16,  # the study file's 32 px, changed as --image-size would
        checkpoint_dir=checkpoints,
        progress=False,
        **options,
    )
    values = sorted(trial.value for trial in study.trials if trial.state == TrialState.COMPLETE)
    assert len(values) == 2
    assert study.trials[0].user_attrs["config"]["image_size"] == 16

    opened = search.open_study(STUDY, storage=storage)
    assert [trial.number for trial in opened.trials] == [0, 1]
    assert opened.best_trial.value == values[-1]

    monkeypatch.setenv("HPSEARCH_STORAGE", storage)  # found without naming it, as by the CLI
    status = search.status()
    assert [row["study"] for row in status.rows] == [STUDY]
    assert status.rows[0]["complete"] == 2
    assert status.rows[0]["best_trial"] == opened.best_trial.number
    assert str(status).splitlines()[1].startswith(STUDY)
    json.dumps(status.rows)  # what `status --json` prints

    rows = search.trials(STUDY, storage=storage, path=tmp_path / "trials.csv")
    assert [(row["trial"], row["state"]) for row in rows] == [(0, "complete"), (1, "complete")]
    assert sorted(row["val_top1"] for row in rows) == values
    assert rows[0]["lr"] == study.trials[0].user_attrs["config"]["lr"]
    assert rows[0]["continues"] is None  # an empty cell: None, not ""
    with (tmp_path / "trials.csv").open(newline="", encoding="utf-8") as file:
        table = list(csv.reader(file))  # `hpsearch trials`'s table: its columns, in this order
    assert table[0] == list(rows[0]) and len(table) == 1 + len(rows)

    figures = search.report_figures(STUDY, storage=storage)
    assert all(isinstance(figure, go.Figure) for figure in figures.values())
    assert {"factor-lr-curves", "factor-optimizer-effect", f"{STUDY}-history"} <= figures.keys()
    history = figures[f"{STUDY}-history"].data[0]
    assert sorted(history.y) == values  # each trial's val top-1, from this study

    report = search.write_report(STUDY, tmp_path / "report.html", storage=storage)
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == report.html
    assert [figure.key for figure in report.figures] == list(figures)

    best = search.export_best(STUDY, path=tmp_path / "best.json", checkpoint_dir=checkpoints)
    assert best["provenance"]["trial"] == opened.best_trial.number
    assert best["lr"] == opened.best_trial.user_attrs["config"]["lr"]
    written, provenance = read_settings(tmp_path / "best.json")
    assert {**written, "provenance": provenance} == best  # the file holds what was returned
    assert (tmp_path / "best.weights.pt").is_file()  # the trial's weights, copied beside it

    epochs_seen = []
    trained = search.train(
        best,
        epochs=1,
        checkpoint_dir=tmp_path / "retrain",
        progress=False,
        on_epoch=epochs_seen.append,
        **options,
    )
    assert epochs_seen == list(trained.result.history)
    assert trained.result.config.lr == best["lr"]  # the export's settings, trained again
    assert trained.data == str(image_folder)  # ... on the data the study recorded
    assert trained.provenance["trial"] == best["provenance"]["trial"]
    assert trained.weights == tmp_path / "retrain" / "weights.pt" and trained.weights.is_file()

    evaluation = search.evaluate(trained.weights, trained.data, progress=False, **options)
    assert evaluation.images == 3 * 12  # the fixture's val/ images
    last = trained.result.history[-1]  # the same weights on the same images: the same scores
    assert evaluation.top1 == pytest.approx(last.val_top1)
    assert evaluation.val_loss == pytest.approx(last.val_loss, rel=1e-4)


def test_the_api_refuses_as_the_commands_do_with_the_projects_errors(tmp_path, image_folder):
    storage = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(ConfigError, match=r"or study='NAME' \(to join .*\), not neither"):
        search.run_study(storage=storage)
    study_file = write_study(tmp_path, image_folder)
    with pytest.raises(ConfigError, match="not both"):
        search.run_study(study_file, study="test-study", storage=storage)
    with pytest.raises(ConfigError, match="wait_for_storage must be a finite number"):
        search.run_study(study_file, storage=storage, wait_for_storage=float("nan"))
    search.run_study(study_file, storage=storage, create_only=True, progress=False, device="cpu")
    with pytest.raises(StudyNotFound, match="it holds: 'test-study'"):
        search.open_study("missing", storage=storage)
    with pytest.raises(ConfigError, match="unknown training setting 'learning_rate'"):
        search.train(learning_rate=0.1, data=image_folder, progress=False)
    assert not (tmp_path / "runs").exists()  # refused before a run folder was made


def test_the_api_checks_what_it_writes_and_trains_before_any_work_naming_its_keywords(
    tmp_path, image_folder
):
    """The commands' checks, made by the functions a notebook calls, so a refusal comes before a
    storage is opened or an image decoded, and names the keyword, not a flag."""
    storage = f"sqlite:///{tmp_path / 'not-made.db'}"  # refused if opened: it does not exist
    folder = tmp_path / "out.toml"
    folder.mkdir()
    (tmp_path / "out.csv").mkdir()
    (tmp_path / "best.weights.pt").mkdir()  # where an export to best.toml copies its weights
    settings = tmp_path / "inf-lr.yaml"
    settings.write_text("lr: .inf\n", encoding="utf-8")
    a_file = tmp_path / "a-file"
    a_file.write_text("", encoding="utf-8")
    study_file = write_study(tmp_path, image_folder)
    before = _listing(tmp_path)

    with _refused(r"^path .*out.toml is a folder; name a file"):
        search.write_report("s", folder, storage=storage)
    with _refused(r"^path .*out.toml is a folder; name a file"):
        search.export_best("s", path=folder, storage=storage)
    with _refused("the best trial's weights there, beside path"):
        search.export_best("s", path=tmp_path / "best.toml", storage=storage)
    with _refused("^top must be at least 1, but got 0"):
        search.export_best("s", top=0, storage=storage)
    with _refused(r"^format='json' does not match \S*best.toml, .*leave format out"):
        search.export_best("s", path=tmp_path / "best.toml", format="json", storage=storage)
    with _refused(r"^path writes CSV: name a .csv file, not \S*trials.xlsx"):
        search.trials("s", path=tmp_path / "trials.xlsx", storage=storage)
    with _refused(r"^path .*out.csv is a folder; name a file"):
        search.trials("s", path=tmp_path / "out.csv", storage=storage)
    with _refused("^image_size must be at least 16 px"):
        search.evaluate(tmp_path / "none.pt", image_folder, image_size=8)
    with _refused(r"^\S*inf-lr.yaml: lr must be a finite number"):
        search.train(settings, data=image_folder, progress=False)
    with _refused("^lr must be a finite number"):  # the keyword, named
        search.train(lr=float("inf"), data=image_folder, progress=False)
    with _refused("checkpoint folder .*a-file is a file"):
        search.train(data=image_folder, checkpoint_dir=a_file, progress=False)
    with _refused("^resume needs checkpoint_dir"):
        search.train(data=image_folder, resume=True, progress=False)
    with _refused("^epochs with study: a study trains as it was created"):
        search.run_study(study="s", epochs=2, storage=storage)
    with _refused("^workers must be at least 1, but got 0"):
        search.run_study(study_file, workers=0, device="cpu", storage=storage)
    # a typo's extra zeros, refused by the checks `hpsearch run` makes, named as keywords
    with _refused(r"with overrides \(trials\): study.trials must be at most 1000000, but got 1"):
        search.run_study(study_file, trials=10**30, device="cpu", storage=storage)
    with _refused(r"with overrides \(epochs\): train: epochs must be at most 100000"):
        search.run_study(study_file, epochs=10**19, device="cpu", storage=storage)
    with _refused(f"^trials_per_worker must be at most 256, but got {10**12}"):
        search.run_study(study_file, trials_per_worker=10**12, device="cpu", storage=storage)
    with _refused(f"^workers must be at most 256, but got {10**12}"):
        search.run_study(study_file, workers=10**12, device="cpu", storage=storage)
    # what `hpsearch run` refuses: two workers on one GPU by naming it twice, every GPU left idle
    # by an empty list (which had trained on the CPU), settings that could not act
    with _refused(r"^gpus names GPU 0 twice; for several workers on each GPU, give workers_per"):
        search.run_study(study_file, gpus=[0, 0], storage=storage)
    with _refused(r"^gpus is empty, which would leave every GPU idle"):
        search.run_study(study_file, gpus=[], storage=storage)
    with _refused(r"^gpus must be a list of GPU numbers like \[0, 2\], not '0,1'"):
        search.run_study(study_file, gpus="0,1", storage=storage)  # type: ignore[arg-type]
    with _refused("^create_only starts no worker, so workers would do nothing"):
        search.run_study(study_file, workers=2, create_only=True, storage=storage)
    with _refused("^workers_per_gpu places workers on GPUs, which device='cpu' does not use"):
        search.run_study(study_file, workers_per_gpu=2, device="cpu", storage=storage)
    with _refused(r"does not exist .*; check the path or storage: "):
        search.status(storage=storage)
    shared = tmp_path / "shared.toml"
    shared.write_text(
        study_file.read_text().replace("[study]", '[study]\nstorage = "postgresql://u:pw@h/db"')
    )
    with _refused("must not hold a secret .* or pass storage instead"):
        search.run_study(shared)
    # no storage, run folder, cache, page or table made
    assert _listing(tmp_path) == before | {shared}


@contextmanager
def _refused(message: str) -> Iterator[None]:
    """A refusal that matches `message` and names no flag: a notebook passed keywords."""
    with pytest.raises(HpsearchError, match=message) as refused:
        yield
    assert "--" not in str(refused.value), refused.value


def test_every_name_search_exports_is_there():
    assert sorted(search.__all__) == sorted(set(search.__all__))
    missing = [name for name in search.__all__ if not hasattr(search, name)]
    assert missing == []
    assert set(search.__all__) <= set(dir(search))
    with pytest.raises(AttributeError, match="no attribute 'run_'"):
        search.run_  # noqa: B018  # a misspelt name is an AttributeError that names it


# In a fresh interpreter: `import search`, and the names a status or export reads a study with.
PROBE = """
import json, sys
import search
imported = [name for name in ("torch", "plotly") if name in sys.modules]
search.open_study, search.status, search.trials, search.export_best, search.StudyStatus
reading = [name for name in ("torch", "plotly") if name in sys.modules]
search.report_figures
drawing = [name for name in ("torch", "plotly") if name in sys.modules]
print(json.dumps([imported, reading, drawing]))
"""


def test_import_search_loads_no_torch_and_reading_a_study_no_plotly():
    ran = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(ran.stdout) == [[], [], ["plotly"]]


def test_the_api_page_documents_every_name_and_shows_the_tested_flow():
    page = (ROOT / "docs" / "reference" / "python-api.md").read_text(encoding="utf-8")
    assert [name for name in search.__all__ if f"::: search.{name}\n" not in page] == []
    example = page[page.index("```python") : page.index("```\n", page.index("```python") + 1)]
    tested = inspect.getsource(
        test_a_notebook_runs_a_search_then_reads_draws_exports_retrains_and_scores_it
    )
    assert _calls(example) == _calls(tested)


def _listing(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def _calls(source: str) -> list[str]:
    """The API's functions that `source` calls, in order."""
    return re.findall(r"\bsearch\.(\w+)\(", source)


def test_a_search_stopped_by_ctrl_c_stops_the_notebook_cell_too(
    tmp_path, image_folder, cache_dir, monkeypatch
):
    """It returned as if done, and the cell went on with its next line: an export of a search cut
    short, a retrain of minutes. It stops at a clean point, then raises, as `train` does."""
    path = write_study(tmp_path, image_folder, trials=1, epochs=2, pruner='kind = "none"')
    keywords = {"storage": f"sqlite:///{tmp_path / 's.db'}", "device": "cpu", "progress": False}
    report = objective.report_epoch

    def then_ctrl_c(trial, epoch, val_top1, **last):
        report(trial, epoch, val_top1, **last)
        signal.raise_signal(signal.SIGINT)  # the notebook's Interrupt, after epoch 1

    monkeypatch.setattr(objective, "report_epoch", then_ctrl_c)
    with pytest.raises(KeyboardInterrupt) as stopped:
        search.run_study(path, cache_dir=cache_dir, **keywords)
    assert isinstance(stopped.value, SearchStopped), stopped.value
    assert "study 'test-study' stopped: each trial in flight is queued to resume" in str(
        stopped.value
    )
    [trial, retry] = stopped.value.study.get_trials()
    assert (trial.state, retry.state) == (TrialState.FAIL, TrialState.WAITING)

    monkeypatch.setattr(objective, "report_epoch", report)
    study = search.run_study(path, cache_dir=cache_dir, **keywords)  # run again: resumed
    assert [trial.state for trial in study.get_trials()][-1] == TrialState.COMPLETE
