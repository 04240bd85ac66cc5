"""`hpsearch export`: the best trial's full training
settings, as a file `hpsearch train --config` retrains.

The settings come from the trial's `config` user attribute (every TrainConfig field, the fixed
ones included), so the file trains exactly what the trial trained. `train` reads the top level
and keeps `[provenance]` without applying it; runners-up therefore live under provenance, and
the file always trains the best trial.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial

from search import attrs
from search.errors import NoFinishedTrial
from search.study.storage import masked
from search.studyfile.settings_file import PROVENANCE, dump_settings, format_of
from trainer.errors import ConfigError

WEIGHTS_SUFFIX = ".weights.pt"


def best_trials(study: optuna.Study, count: int = 1) -> list[FrozenTrial]:
    """The `count` best complete trials, best first (the earlier trial first among equals)."""
    trials = study.get_trials(deepcopy=False)
    ranked = attrs.ranked(trials)
    if not ranked:
        counts = attrs.state_counts(trials)
        found = (
            ", ".join(f"{count} {state}" for state, count in counts.items() if count) or "no trials"
        )
        raise NoFinishedTrial(
            f"study {study.study_name!r} has no complete trial to export ({found})"
        )
    return ranked[:count]


def trial_settings(trial: FrozenTrial) -> dict[str, Any]:
    """What `train --config` needs to train this trial again: its whole TrainConfig."""
    config = trial.user_attrs.get(attrs.CONFIG)
    if not isinstance(config, dict):
        raise NoFinishedTrial(
            f"trial {trial.number} records no training config (no 'config' user attribute); "
            "it was not run by hpsearch"
        )
    return dict(config)


def export_settings(
    study: optuna.Study, *, top: int = 1, storage_url: str | None = None
) -> dict[str, Any]:
    """The best trial's settings at the top level, with
    provenance and, for top > 1, the runners-up."""
    return _settings(study, _top(study, top), storage_url)


def _top(study: optuna.Study, top: int) -> list[FrozenTrial]:
    if top < 1:
        raise ValueError(f"top must be at least 1, but got {top=}")
    return best_trials(study, top)


def _settings(
    study: optuna.Study, ranked: list[FrozenTrial], storage_url: str | None
) -> dict[str, Any]:
    best, *runners_up = ranked
    values = trial_settings(best)
    source = study.user_attrs.get(attrs.DATA_SOURCE)
    if source is not None:
        values["data"] = source
    provenance = _provenance(study, best, storage_url)
    if runners_up:
        provenance["runners_up"] = [
            {"trial": trial.number, "value": trial.value, "settings": trial_settings(trial)}
            for trial in runners_up
        ]
    return {**values, PROVENANCE: provenance}


def _provenance(study: optuna.Study, trial: FrozenTrial, storage_url: str | None) -> dict[str, Any]:
    completed = trial.datetime_complete
    provenance = {
        "study": study.study_name,
        "trial": trial.number,
        "value": trial.value,
        "epochs_run": trial.user_attrs.get(attrs.EPOCHS_RUN),
        "best_epoch": trial.user_attrs.get(attrs.BEST_EPOCH),
        "date": completed.isoformat() if completed else None,
        "data_fingerprint": study.user_attrs.get(attrs.DATA_FINGERPRINT),
        "code_version": trial.user_attrs.get(attrs.CODE_VERSION),
    }
    if storage_url is not None:
        provenance["storage"] = masked(storage_url)
    return provenance


def kept_weights(trial: FrozenTrial) -> Path | None:
    """The trial's final weights, if its worker kept them and they still exist."""
    recorded = trial.user_attrs.get(attrs.WEIGHTS)
    return Path(recorded) if recorded and Path(recorded).is_file() else None


def weights_beside(path: Path) -> Path:
    """best.toml -> best.weights.pt: the weights travel with the settings file they belong to."""
    return path.with_name(path.stem + WEIGHTS_SUFFIX)


class Exported(NamedTuple):
    text: str  # the settings file, in `fmt`
    fmt: str  # toml, json or yaml
    trial: int  # the number of the trial it trains


def export(
    study: optuna.Study,
    *,
    output: Path | None = None,
    fmt: str | None = None,
    top: int = 1,
    storage_url: str | None = None,
) -> Exported:
    """The best trial's settings in `fmt` (default: from output's suffix, else json); with `output`,
    also written there, the trial's kept weights copied beside it."""
    fmt = output_format(output, fmt)
    ranked = _top(study, top)  # one read of the study, however many trials it holds
    values = _settings(study, ranked, storage_url)
    if "data" not in values:
        print(
            f"hpsearch: study {study.study_name!r} does not record its data source; pass --data to "
            "`hpsearch train`, or it trains on its default data",
            file=sys.stderr,
        )
    _name_weights(values, ranked[0], output)
    text = dump_settings(values, fmt)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    return Exported(text, fmt, values[PROVENANCE]["trial"])


def output_format(output: Path | None, chosen: str | None) -> str:
    """The format to write: as chosen, which must agree with output's suffix, else json."""
    if output is None:
        return chosen or "json"
    from_suffix = format_of(output)  # train reads a file by its suffix, so the two must agree
    if chosen is not None and chosen != from_suffix:
        raise ConfigError(
            f"--format {chosen} does not match {output}, which `hpsearch train` would read as "
            f"{from_suffix}; name the file .{chosen} or leave --format out"
        )
    return from_suffix


def _name_weights(values: dict[str, Any], trial: FrozenTrial, output: Path | None) -> None:
    """Name the trial's kept weights in provenance, copying them beside the output file."""
    weights = kept_weights(trial)
    if weights is None:
        if trial.user_attrs.get(attrs.WEIGHTS):
            print(
                f"hpsearch: trial {trial.number}'s weights {trial.user_attrs[attrs.WEIGHTS]} "
                "no longer exist; exporting its settings only",
                file=sys.stderr,
            )
        return
    if output is None:
        values[PROVENANCE]["weights"] = str(weights)
        return
    copy = weights_beside(output)
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, copy)
    # Beside the settings file, wherever the pair is moved
    values[PROVENANCE]["weights"] = copy.name
