"""`hpsearch trials`: every trial of a study as CSV (no pandas), read back with the csv module and
checked against the study; states named as status and the report name them."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search import attrs
from search.cli import SIGPIPE_EXIT, main
from search.results.report_data import FACTORS, get_summary_info
from search.results.trials_table import trial_rows


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_the_table_reads_back_as_the_study(small_search, tmp_path, capsys):
    out = tmp_path / "tables" / "trials.csv"
    argv = ["trials", "--storage", small_search.url, "--study", small_search.study]
    assert main([*argv, "-o", str(out)]) == 0
    study = optuna.load_study(study_name=small_search.study, storage=small_search.url)
    assert capsys.readouterr().err.strip() == (
        f"wrote {len(study.trials)} trials of study 'factors' to {out}"
    )
    rows = read_csv(out.read_text(encoding="utf-8"))
    assert list(rows[0]) == [
        "trial",
        "state",
        "val_top1",
        "last_val_top1",
        *FACTORS,
        "epochs_run",
        "best_epoch",
        "seconds",
        "continues",
        "fail_reason",
    ]
    assert [int(row["trial"]) for row in rows] == [trial.number for trial in study.trials]
    for row, trial in zip(rows, study.trials):
        config = attrs.trial_config(trial)
        assert row["state"] == trial.state.name.lower()
        complete = trial.state == TrialState.COMPLETE
        assert row["val_top1"] == (repr(trial.value) if complete else "")
        scores = trial.intermediate_values
        assert row["last_val_top1"] == (repr(scores[max(scores)]) if scores else "")
        for factor in FACTORS:  # exact, fixed factors included (eps is no Optuna parameter here)
            assert row[factor] == ("" if config.get(factor) is None else str(config[factor]))
        assert int(row["epochs_run"]) == trial.user_attrs["epochs_run"]
        assert row["best_epoch"] == str(trial.user_attrs.get("best_epoch", ""))
        epochs = trial.user_attrs.get("history", [])
        assert float(row["seconds"] or 0) == pytest.approx(sum(e["seconds"] for e in epochs))
        assert row["fail_reason"] == (trial.user_attrs.get("fail_reason") or "")
    assert {row["state"] for row in rows} >= {"complete", "pruned", "fail"}
    assert "non-finite" in next(row["fail_reason"] for row in rows if row["state"] == "fail")
    # Standard output unless -o: the same table
    assert main(argv) == 0
    assert read_csv(capsys.readouterr().out) == rows


LR = FloatDistribution(1e-4, 1.0, log=True)


def made(number: int, state: TrialState, user_attrs: dict | None = None):
    return create_trial(
        state=state,
        value=0.5 if state == TrialState.COMPLETE else None,
        # A queued trial's params are Optuna's to fill in as it starts
        params={} if state == TrialState.WAITING else {"lr": 0.01 * (number + 1)},
        distributions={} if state == TrialState.WAITING else {"lr": LR},
        intermediate_values={} if state == TrialState.WAITING else {1: 0.3},
        user_attrs=user_attrs or {},
    )


def continuing(trial: int, *, promotion: bool) -> dict:
    """A retry's attributes (search.study.retries), or a promoted continuation's."""
    made_attrs = {attrs.RETRY_OF: trial, attrs.RETRIED_FROM: trial, attrs.ATTEMPT: 1}
    return {**made_attrs, attrs.PROMOTION_OF: trial} if promotion else made_attrs


def test_states_are_named_as_status_names_them_and_placeholders_have_no_row(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'states.db'}", study_name="s")
    stopped = "stopped: its worker was stopped (training stopped on request)"
    paused = {attrs.PAUSED_AT: 1}
    for trial in (
        made(0, TrialState.COMPLETE),
        made(1, TrialState.FAIL, {attrs.FAIL_REASON: stopped}),  # queued to resume: stopped
        made(2, TrialState.FAIL, {attrs.FAIL_REASON: "FloatingPointError: nan"}),  # for good
        made(3, TrialState.PRUNED, paused),  # paused, then promoted
        made(4, TrialState.PRUNED, paused),  # paused, its continuation queued
        made(5, TrialState.COMPLETE, continuing(1, promotion=False)),  # resumes trial 1
        made(6, TrialState.COMPLETE, continuing(3, promotion=True)),
        made(7, TrialState.WAITING, continuing(4, promotion=True)),  # never ran: no row
        made(8, TrialState.RUNNING),
        made(9, TrialState.FAIL, {attrs.FAIL_REASON: stopped}),
        made(10, TrialState.WAITING, continuing(9, promotion=False)),  # queued: no params yet
    ):
        study.add_trial(trial)
    rows = {row["trial"]: row for row in trial_rows(study)}
    assert {number: row["state"] for number, row in rows.items()} == {
        0: "complete",
        1: "stopped",
        2: "fail",
        3: "promoted",
        4: "paused",
        5: "complete",
        6: "complete",
        8: "running",
        9: "stopped",
        10: "waiting",
    }
    assert rows[5]["continues"] == 1 and rows[6]["continues"] == 3
    assert rows[1]["fail_reason"] == stopped and rows[1]["val_top1"] is None
    assert rows[8]["epochs_run"] == 1 and rows[8]["last_val_top1"] == 0.3
    assert rows[0]["lr"] == 0.01  # a trial hpsearch did not run: Optuna's params
    assert rows[10]["continues"] == 9
    assert rows[10]["lr"] == rows[9]["lr"] is not None  # queued, it trains what it continues


def test_a_continued_trial_s_seconds_are_those_of_every_epoch_it_counts(tmp_path):
    """A promotion records the seconds it trained (a sum over trials counts each epoch once), but
    its epochs_run counts the epochs it restored too: its row says what those epochs took."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'continued.db'}", study_name="c")

    def trained(*seconds: float, restored: int = 0) -> dict:
        history = [{"epoch": n, "val_top1": 0.3, "seconds": s} for n, s in enumerate(seconds, 1)]
        return {
            attrs.HISTORY: history,
            attrs.EPOCHS_RUN: len(history),
            attrs.SECONDS: sum(seconds[restored:]),
            attrs.RESUMED_FROM_EPOCH: restored,
        }

    study.add_trial(made(0, TrialState.PRUNED, {attrs.PAUSED_AT: 1, **trained(1.5)}))
    promoted = {**continuing(0, promotion=True), **trained(1.5, 0.5, 1.0, restored=1)}
    study.add_trial(made(1, TrialState.COMPLETE, promoted))
    rows = {row["trial"]: row for row in trial_rows(study)}
    assert (rows[0]["seconds"], rows[1]["seconds"]) == (1.5, 3.0)
    summary = get_summary_info(study)
    assert [(row.number, row.epochs_run, row.seconds) for row in summary.top] == [(1, 3, 3.0)]
    assert summary.compute_seconds == pytest.approx(3.0)  # 1.5 + 0.5 + 1.0: each epoch once


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    # `hpsearch trials | head`: the pipe closes while rows are still being written
    url = f"sqlite:///{tmp_path / 'long.db'}"
    study = optuna.create_study(storage=url, study_name="long", direction="maximize")
    long_reason = {attrs.FAIL_REASON: "x" * 2000}  # 100 rows of 2 kB: more than a pipe holds
    study.add_trials([made(number, TrialState.FAIL, long_reason) for number in range(100)])
    hpsearch = [sys.executable, "-m", "search", "trials", "--storage", url, "--study", "long"]
    with subprocess.Popen(hpsearch, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().startswith(b"trial,")
        process.stdout.close()
        error = process.stderr.read().decode()
    assert (process.returncode, error) == (SIGPIPE_EXIT, "")
