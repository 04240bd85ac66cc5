"""`hpsearch trials` and `search.trials`: every trial of a study as a row, a CSV row for a
spreadsheet or a dict for a notebook.

Optuna's `trials_dataframe()` needs pandas, which hpsearch does not install; the csv module
writes the same table. States are named as `status` and the report count them: a trial asha
paused is `paused` (or `promoted` once its continuation ran), a FAIL queued to resume is
`stopped`. A paused trial's queued or closed continuation never trained and has no row, so the
numbers skip there; `continues` names the trial a retry or a promotion carries on. A parameter
is a column of its own name, or `param_NAME` where that name is taken (`param_column`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import attrs
from search.results import output_file
from search.results.report_data import FACTORS, trial_factors
from search.study.promotion import never_ran, promoted
from trainer.errors import ConfigError
from trainer.outputs import check_output_file

# val_top1: a complete trial's value, its best epoch's (0..1); last_val_top1: its last epoch's,
# for any trial that scored one (Optuna's value for a pruned trial, which is not its best)
LEADING = ("trial", "state", "val_top1", "last_val_top1")
TRAILING = ("epochs_run", "best_epoch", "seconds", "continues", "fail_reason")
# Another tool's study may name a parameter `state` or `seconds`: its column is `param_state`,
# as Optuna's trials_dataframe names every parameter's, so that no column overwrites another
PARAM_PREFIX = "param_"


def trials_table(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial that trained or trains, by trial number, each with every column of the
    table in its order (`columns`); None where a cell is empty."""
    rows = trial_rows(study)
    names = columns(rows)
    return [{name: row.get(name) for name in names} for row in rows]


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial that trained or trains, by trial number, with the columns it fills:
    a parameter only some trials sample is in their rows alone."""
    trials = study.get_trials(deepcopy=False)
    names = _state_names(trials)
    by_number = {trial.number: trial for trial in trials}
    return [
        _row(trial, names[trial.number], _trains_as(trial, by_number))
        for trial in trials
        if not never_ran(trial)
    ]


def _trains_as(trial: FrozenTrial, by_number: dict[int, FrozenTrial]) -> FrozenTrial:
    """Whose settings the trial's row shows: a queued retry records none until it runs, and
    trains those of the trial it continues."""
    if trial.state != TrialState.WAITING or attrs.CONFIG in trial.user_attrs:
        return trial
    continues = attrs.stored_number(trial, attrs.RETRIED_FROM)
    return trial if continues is None else by_number.get(continues, trial)


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """The factors, then any other parameter a trial sampled, in a stable order."""
    extra = sorted({name for row in rows for name in row} - {*LEADING, *FACTORS, *TRAILING})
    return [*LEADING, *FACTORS, *extra, *TRAILING]


def check_csv_path(path: Path, what: str) -> None:
    """`path` can take the table, before the storage is opened; `what` names it (-o, path)."""
    if path.suffix.lower() != ".csv":
        raise ConfigError(f"{what} writes CSV: name a .csv file, not {path}")
    check_output_file(path, what, "trials.csv")
    output_file.check_not_data(path, what)


def write_trials_file(rows: list[dict[str, Any]], path: Path, what: str = "path") -> None:
    """The table written to `path` whole, or the earlier file left as it was; `what` names
    `path` in an error (-o, path)."""
    table = io.StringIO(newline="")  # csv writes its own line ends
    write_trials_csv(rows, table)
    output_file.write_text(path, table.getvalue(), what)


def write_trials_csv(rows: list[dict[str, Any]], out: TextIO) -> None:
    """Write `trials_table`'s rows to `out` as CSV, an empty cell for None."""
    writer = csv.DictWriter(out, fieldnames=columns(rows), restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: "" if value is None else value for name, value in row.items()})


def _row(trial: FrozenTrial, state: str, trains_as: FrozenTrial) -> dict[str, Any]:
    user = trial.user_attrs
    continues = user.get(attrs.RETRIED_FROM)
    return {
        "trial": trial.number,
        "state": state,
        "val_top1": trial.value if trial.state == TrialState.COMPLETE else None,
        "last_val_top1": _last_score(trial),
        **trial_factors(trains_as),
        # A parameter no factor names (a study file's own): its sampled value
        **{
            param_column(name): value
            for name, value in trains_as.params.items()
            if name not in FACTORS
        },
        "epochs_run": user.get(attrs.EPOCHS_RUN, len(trial.intermediate_values)),
        "best_epoch": user.get(attrs.BEST_EPOCH),
        "seconds": _seconds(trial),
        "continues": continues,
        "fail_reason": attrs.fail_reason(trial),
    }


def _seconds(trial: FrozenTrial) -> Any:
    """What its epochs_run took, restored epochs included; another tool's value, as stored."""
    counted = attrs.lineage_seconds(trial)
    return counted if counted is not None else trial.user_attrs.get(attrs.SECONDS)


def param_column(name: str) -> str:
    """The column of a parameter no factor names: its own name, unless that is one of the fixed
    columns (or could be taken for the column of another parameter so renamed)."""
    fixed = name in LEADING or name in TRAILING or name.startswith(PARAM_PREFIX)
    return PARAM_PREFIX + name if fixed else name


def _last_score(trial: FrozenTrial) -> float | None:
    scores = trial.intermediate_values
    return scores[max(scores)] if scores else None


def _state_names(trials: list[FrozenTrial]) -> dict[int, str]:
    continued = promoted(trials)
    # A FAIL that a retry carries on was stopped (a signal, a dead worker), not failed for good.
    # Only a trial number names the trial a retry continues (attrs.stored_number).
    resumed = {
        attrs.stored_number(trial, attrs.RETRIED_FROM)
        for trial in trials
        if attrs.PROMOTION_OF not in trial.user_attrs
    }
    names = {}
    for trial in trials:
        name = trial.state.name.lower()
        if attrs.PAUSED_AT in trial.user_attrs:
            name = "promoted" if trial.number in continued else "paused"
        elif trial.state == TrialState.FAIL and trial.number in resumed:
            name = "stopped"
        names[trial.number] = name
    return names
