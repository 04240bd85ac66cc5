"""Reading a study from Python: open it, see where it stands, list its trials, export its best
trial. Nothing here loads torch or Plotly, so `hpsearch status`, `trials` and `export`, which call
these, answer at once."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from search import locations
from search.errors import ConfigError
from search.results.export import check_export_paths, export, output_format
from search.results.status import format_status, storage_status, study_status
from search.results.trials_table import check_csv_path, trials_table, write_trials_file
from search.serve.notes import attach_best_params
from search.study import recorded
from search.study.optuna_compat import storage_of
from search.study.storage import open_storage
from search.study.writable import NOTE_TABLES, refused_write
from search.url_secrets import masked
from trainer.naming import named
from trainer.outputs import check_output_file


def open_study(name: str, *, storage: str | None = None) -> optuna.Study:
    """The study called `name`, loaded from `storage` (a URL; default: $HPSEARCH_STORAGE, else
    `sqlite:///hpsearch.db`), for reading: Optuna's own API works on it (`study.best_trial`,
    `study.trials_dataframe()`, `optuna.visualization`). A storage that does not exist is refused,
    never created; a missing study is a `StudyNotFound` that lists the studies there."""
    return open_studies([name], storage=storage)[0]


def open_studies(names: Iterable[str], *, storage: str | None = None) -> list[optuna.Study]:
    """Several studies of one storage, each once, in the order given."""
    url = locations.storage_url(storage)
    opened = open_storage(url, create=False)  # a mistyped storage is refused, not created
    return [recorded.find_study(opened, name) for name in dict.fromkeys(names)]


@dataclass(frozen=True)
class StudyStatus:
    """Where the studies of a storage stand, a row per study, as `hpsearch status` shows them:
    `str()` (or `print`) gives its table, `rows` the plain data `status --json` prints (trial
    counts by state, the budget and how much of it is spent, the best value, trial, parameters and
    whole training configuration, and each running trial's worker and heartbeat). `skipped` holds
    a line for each study of the storage hpsearch cannot read (another tool's, with several
    objectives or one it minimizes), which has no row; `str()` ends with them."""

    rows: list[dict[str, Any]]
    skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join([format_status(self.rows), *self.skipped])

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython and Jupyter show the table, not the rows, when a cell ends with the status."""
        printer.text(str(self))


def status(name: str | None = None, *, storage: str | None = None) -> StudyStatus:
    """The status of the study `name` (a study hpsearch cannot read is an error, as a missing one
    is), or of every study in the storage (default: $HPSEARCH_STORAGE, else
    `sqlite:///hpsearch.db`) that it can read, the others named in `skipped`."""
    opened = open_storage(locations.storage_url(storage), create=False)
    if name is not None:
        return StudyStatus(study_status(opened, name))
    found = storage_status(opened)
    return StudyStatus(found.rows, found.skipped)


def trials(
    name: str, *, storage: str | None = None, path: str | Path | None = None
) -> list[dict[str, Any]]:
    """Every trial of the study `name` that trained or trains, by number, as `hpsearch trials`
    lists them: a dict per trial with the table's columns in its order (`trial`, `state`,
    `val_top1`, `last_val_top1`, the factors and any other sampled parameter (`param_NAME` where
    its name is one of these columns'), `epochs_run`,
    `best_epoch`, `seconds`, `continues`, `fail_reason`), None where a cell is empty; states are
    named as `status` counts them (`paused`, `promoted`, `stopped` apart from `pruned` and
    `fail`). `pandas.DataFrame(rows)` makes a frame of them. With `path` (.csv), the table is
    also written there, as `hpsearch trials -o` writes it."""
    output = Path(path) if path is not None else None
    if output is not None:  # refused before the storage is opened
        check_csv_path(output, named("path"))
    rows = trials_table(open_study(name, storage=storage))
    if output is not None:
        write_trials_file(rows, output, named("path"))
    return rows


def export_best(
    name: str,
    *,
    storage: str | None = None,
    path: str | Path | None = None,
    format: str | None = None,
    top: int = 1,
    checkpoint_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The best complete trial's whole training configuration, with a `provenance` table (study,
    trial, value, data, code version and, with `top` above 1, the runners-up), as `hpsearch export`
    writes it: `train` retrains the dict or the file as it is.

    With `path` (.toml, .json, .yaml or .yml; `format`, if given, must agree), it is written there
    and the trial's kept weights, found under `checkpoint_dir` (default: $HPSEARCH_CHECKPOINTS,
    the study file's [checkpoint] dir, else the user cache), are copied beside it as
    NAME.weights.pt. The export is also put on the study's note, where the dashboard shows it;
    a storage that refuses writes still gives the settings, and a warning on standard error says
    the note goes without them. A study with no complete trial is a `NoFinishedTrial`."""
    if top < 1:
        raise ConfigError(f"{named('top')} must be at least 1, but got {top}")
    output = Path(path) if path is not None else None
    if output is not None and output.is_dir():  # said as the folder it is: its name tells no format
        check_output_file(output, named("path"), f"best.{format or 'toml'}")
    fmt = output_format(output, format)  # refused before the storage is opened
    if output is not None:  # and so are the paths it writes
        check_export_paths(output, fmt, named("path"))
    if checkpoint_dir is not None and Path(checkpoint_dir).is_file():
        # Read, not written: a file there would only be said to hold no trial's weights
        raise ConfigError(
            f"{named('checkpoint_dir')} {checkpoint_dir} is a file, not a folder; name the folder "
            "the workers wrote their trials' checkpoints into"
        )
    url = locations.storage_url(storage)
    study = open_study(name, storage=storage)
    # A reader who may not write the storage still gets the settings; only the study's note goes
    # without them, and says so
    refusal = refused_write(storage_of(study), NOTE_TABLES)
    root = locations.checkpoint_root(checkpoint_dir, recorded.checkpoint_dir(study))
    exported = export(study, output=output, fmt=fmt, top=top, storage_url=url, checkpoint_root=root)
    if refusal is None:  # the dashboard shows the latest export on the study's note
        attach_best_params(study, exported.text, exported.fmt)
    else:
        print(
            f"hpsearch: warning: the exported settings are not shown on the note of study "
            f"{study.study_name!r} in the dashboard: storage {masked(url)} refuses writes: "
            f"{refusal}",
            file=sys.stderr,
        )
    return exported.settings
