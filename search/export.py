"""`hpsearch export`: the best trial's full training settings, as a file `hpsearch train --config` retrains.

The settings come from the trial's `config` user attribute (every TrainConfig field, the fixed
ones included), so the file trains exactly what the trial trained. `train` reads the top level
and keeps `[provenance]` without applying it; runners-up therefore live under provenance, and
the file always trains the best trial.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.dashboard import attach_best_params
from search.objective import WEIGHTS_ATTR
from search.settings_file import FORMATS, PROVENANCE, dump_settings, format_of
from search.storage import masked, open_storage, resolve_storage_url
from search.study import DATA_SOURCE_ATTR, FINGERPRINT_ATTR, find_study
from trainer.errors import ConfigError

WEIGHTS_SUFFIX = ".weights.pt"


class NoFinishedTrial(LookupError):
    """The study has no complete trial, so there is nothing to export."""


def best_trials(study: optuna.Study, count: int = 1) -> list[FrozenTrial]:
    """The `count` best complete trials, best first (the earlier trial first among equals)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        states = [trial.state.name.lower() for trial in study.get_trials(deepcopy=False)]
        found = ", ".join(f"{states.count(state)} {state}" for state in dict.fromkeys(states)) or "no trials"
        raise NoFinishedTrial(f"study {study.study_name!r} has no complete trial to export ({found})")
    return sorted(complete, key=lambda trial: (-trial.value, trial.number))[:count]


def trial_settings(trial: FrozenTrial) -> dict[str, Any]:
    """What `train --config` needs to train this trial again: its whole TrainConfig."""
    config = trial.user_attrs.get("config")
    if not isinstance(config, dict):
        raise NoFinishedTrial(f"trial {trial.number} records no training config (no 'config' user attribute); "
                              "it was not run by hpsearch")
    return dict(config)


def export_settings(study: optuna.Study, *, top: int = 1, storage_url: str | None = None) -> dict[str, Any]:
    """The best trial's settings at the top level, with provenance and, for top > 1, the runners-up."""
    if top < 1:
        raise ValueError(f"top must be at least 1, but got {top=}")
    best, *runners_up = best_trials(study, top)
    values = trial_settings(best)
    source = study.user_attrs.get(DATA_SOURCE_ATTR)
    if source is not None:
        values["data"] = source
    provenance = _provenance(study, best, storage_url)
    if runners_up:
        provenance["runners_up"] = [{"trial": trial.number, "value": trial.value, "settings": trial_settings(trial)}
                                    for trial in runners_up]
    return {**values, PROVENANCE: provenance}


def _provenance(study: optuna.Study, trial: FrozenTrial, storage_url: str | None) -> dict[str, Any]:
    completed = trial.datetime_complete
    provenance = {"study": study.study_name, "trial": trial.number, "value": trial.value,
                  "epochs_run": trial.user_attrs.get("epochs_run"), "best_epoch": trial.user_attrs.get("best_epoch"),
                  "date": completed.isoformat() if completed else None,
                  "data_fingerprint": study.user_attrs.get(FINGERPRINT_ATTR),
                  "code_version": trial.user_attrs.get("code_version")}
    if storage_url is not None:
        provenance["storage"] = masked(storage_url)
    return provenance


def kept_weights(trial: FrozenTrial) -> Path | None:
    """The trial's final weights, if its worker kept them and they still exist."""
    recorded = trial.user_attrs.get(WEIGHTS_ATTR)
    return Path(recorded) if recorded and Path(recorded).is_file() else None


def weights_beside(path: Path) -> Path:
    """best.toml -> best.weights.pt: the weights travel with the settings file they belong to."""
    return path.with_name(path.stem + WEIGHTS_SUFFIX)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export", help="the best trial's settings, as a file `hpsearch train --config` retrains",
        description="Write the best complete trial's full training settings and a [provenance] table. "
                    "JSON on standard output unless -o is given. With --top K, the best trial's settings "
                    "stay at the top level (train trains it) and the next K-1, in rank order, are listed "
                    "under provenance.runners_up as {trial, value, settings}.")
    parser.add_argument("--storage", help="storage URL (default: $HPSEARCH_STORAGE or sqlite:///hpsearch.db)")
    parser.add_argument("--study", required=True, metavar="NAME", help="the study to export from")
    parser.add_argument("--format", choices=FORMATS, help="toml, json or yaml (default: from -o's suffix, else json)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write here (.toml, .json, .yaml or .yml); the best trial's kept weights, if any, "
                             f"are copied beside it as NAME{WEIGHTS_SUFFIX}")
    parser.add_argument("--top", type=int, default=1, metavar="K",
                        help="also list the runners-up, K trials in all, under provenance.runners_up (default 1)")
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, but got {args.top}")
    fmt = _output_format(args.output, args.format)
    url = resolve_storage_url(args.storage)
    study = find_study(open_storage(url), args.study)
    values = export_settings(study, top=args.top, storage_url=url)
    if "data" not in values:
        print(f"hpsearch: study {study.study_name!r} does not record its data source; pass --data to "
              "`hpsearch train`, or it trains on its default data", file=sys.stderr)
    _name_weights(values, best_trials(study)[0], args.output)
    text = dump_settings(values, fmt)
    attach_best_params(study, text, fmt)  # the dashboard shows the latest export on the study's note
    if args.output is None:
        sys.stdout.write(text)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote trial {values[PROVENANCE]['trial']} of study {study.study_name!r} to {args.output}", file=sys.stderr)
    return 0


def _output_format(output: Path | None, chosen: str | None) -> str:
    if output is None:
        return chosen or "json"
    from_suffix = format_of(output)  # train reads a file by its suffix, so the two must agree
    if chosen is not None and chosen != from_suffix:
        raise ConfigError(f"--format {chosen} does not match {output}, which `hpsearch train` would read as "
                         f"{from_suffix}; name the file .{chosen} or leave --format out")
    return from_suffix


def _name_weights(values: dict[str, Any], trial: FrozenTrial, output: Path | None) -> None:
    """Name the trial's kept weights in provenance, copying them beside the output file."""
    weights = kept_weights(trial)
    if weights is None:
        if trial.user_attrs.get(WEIGHTS_ATTR):
            print(f"hpsearch: trial {trial.number}'s weights {trial.user_attrs[WEIGHTS_ATTR]} no longer exist; "
                  "exporting its settings only", file=sys.stderr)
        return
    if output is None:
        values[PROVENANCE]["weights"] = str(weights)
        return
    copy = weights_beside(output)
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, copy)
    values[PROVENANCE]["weights"] = copy.name  # beside the settings file, wherever the pair is moved
