"""`hpsearch export`: the best trial's full training
settings, as a file `hpsearch train --config` retrains.

The settings come from the trial's `config` user attribute (every TrainConfig field, the fixed
ones included), so the file trains exactly what the trial trained. `train` reads the top level
and keeps `[provenance]` without applying it; runners-up therefore live under provenance, and
the file always trains the best trial. What the search trained on but a retrain does not (a cap
per class, a validation split carved out of train/) is recorded in provenance and said aloud.

The weights are found in the study's own folder from its identity and the trial's number, and
copied only if they record that trial as their owner (search.run.trial_files).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial

from search import attrs
from search.errors import NoFinishedTrial
from search.results import output_file
from search.run import trial_files
from search.study.promotion import shown_counts
from search.study.recorded import data_fingerprint, data_source
from search.study.storage_flag import storage_flag
from search.studyfile.train_file import PROVENANCE, dump_settings, format_of
from search.url_secrets import masked
from trainer.errors import ConfigError
from trainer.files import read_owner
from trainer.naming import given, named
from trainer.outputs import check_output_file
from trainer.source_names import IMAGENETTE, is_archive

WEIGHTS_SUFFIX = ".weights.pt"


def best_trials(
    study: optuna.Study, count: int = 1, storage_url: str | None = None
) -> list[FrozenTrial]:
    """The `count` best complete trials, best first (the earlier trial first among equals); none
    is an error that counts the trials as `status` does and says how to list them in
    `storage_url`."""
    trials = study.get_trials(deepcopy=False)
    ranked = attrs.ranked(trials)
    if not ranked:
        counts = shown_counts(trials)
        found = (
            ", ".join(f"{count} {state}" for state, count in counts.items() if count) or "no trials"
        )
        listing = f"hpsearch trials --study {shlex.quote(study.study_name)}"
        raise NoFinishedTrial(
            f"study {study.study_name!r} has no complete trial to export ({found}); "
            f"`{listing}{storage_flag(storage_url)}` lists each trial's state and fail "
            "reason, and `hpsearch run` runs more"
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


def _top(study: optuna.Study, top: int, storage_url: str | None) -> list[FrozenTrial]:
    if top < 1:
        raise ValueError(f"top must be at least 1, but got {top=}")
    ranked = best_trials(study, top, storage_url)
    if len(ranked) < top:  # a file with fewer runners-up than asked for says why
        print(
            f"hpsearch: {given('top', top)} asked for {top} trials, but study "
            f"{study.study_name!r} has {len(ranked)} complete: listing "
            f"{len(ranked) - 1} runner{'' if len(ranked) == 2 else 's'}-up",
            file=sys.stderr,
        )
    return ranked


def _settings(
    study: optuna.Study, ranked: list[FrozenTrial], storage_url: str | None
) -> dict[str, Any]:
    best, *runners_up = ranked
    values = trial_settings(best)
    source = data_source(study)
    if source is not None:
        values["data"] = _data_from_anywhere(source)
    provenance = _provenance(study, best, storage_url)
    if runners_up:
        provenance["runners_up"] = [
            {"trial": trial.number, "value": trial.value, "settings": trial_settings(trial)}
            for trial in runners_up
        ]
    return {**values, PROVENANCE: provenance}


def _data_from_anywhere(source: str) -> str:
    """The data a study records, as `train --config` finds it from any folder: a path made
    absolute, an Imagenette name or a URL as recorded. A study records the path absolute (see
    `opening.with_data_from_anywhere`); one made before that kept it as typed, relative to a folder
    it does not record: resolved from here, where export is most often run, and kept as typed
    (said aloud) where it names nothing here."""
    if source in IMAGENETTE or "://" in source:
        return source
    path = Path(source).expanduser()
    if not path.exists():
        if not path.is_absolute():
            print(
                f"hpsearch: the study's data {source!r} is relative to the folder the search "
                f"ran in, and names nothing here; the file keeps it as recorded: train it from "
                f"that folder, or pass {given('data', 'PATH')} to train",
                file=sys.stderr,
            )
        return source
    # An archive keeps its own name (a link's target may lack the .tar.gz that marks it one); a
    # folder is named by its real path, as the trainer reads it
    return str(path.absolute() if is_archive(path) else path.resolve())


def _provenance(study: optuna.Study, trial: FrozenTrial, storage_url: str | None) -> dict[str, Any]:
    completed = trial.datetime_complete
    provenance = {
        "study": study.study_name,
        "trial": trial.number,
        "value": trial.value,
        "epochs_run": trial.user_attrs.get(attrs.EPOCHS_RUN),
        "best_epoch": trial.user_attrs.get(attrs.BEST_EPOCH),
        "date": completed.isoformat() if completed else None,
        "data_fingerprint": data_fingerprint(study),
        "search_data": searched_on(study),
        "code_version": trial.user_attrs.get(attrs.CODE_VERSION),
    }
    if storage_url is not None:
        provenance["storage"] = masked(storage_url)
    return provenance


def searched_on(study: optuna.Study) -> dict[str, Any]:
    """The cap per class and validation split the search scored its trials with; a retrain with
    the exported file uses every training image and scores on val/ unless told otherwise."""
    fingerprint = data_fingerprint(study) or {}
    return {
        "per_class": fingerprint.get("per_class"),
        "validation_fraction": fingerprint.get("validation_fraction"),
    }


def weights_beside(path: Path) -> Path:
    """best.toml -> best.weights.pt: the weights travel with the settings file they belong to."""
    return path.with_name(path.stem + WEIGHTS_SUFFIX)


def check_export_paths(output: Path, fmt: str, what: str) -> None:
    """Both files an export to `output` writes can be written, before the storage is opened: the
    settings file and the weights beside it. `what` names `output` for the user (-o, path)."""
    check_output_file(output, what, f"best.{fmt}")
    output_file.check_not_data(output, what)
    weights = weights_beside(output)
    if weights.is_dir():
        raise ConfigError(
            f"{weights} is a folder, but export copies the best trial's weights there, beside "
            f"{what} {output}; move the folder or name another {what}"
        )


class Exported(NamedTuple):
    text: str  # the settings file, in `fmt`
    fmt: str  # toml, json or yaml
    trial: int  # the number of the trial it trains
    settings: dict[str, Any]  # what `text` holds, as data: the settings and their provenance


def export(
    study: optuna.Study,
    *,
    output: Path | None = None,
    fmt: str | None = None,
    top: int = 1,
    storage_url: str | None = None,
    checkpoint_root: Path | None = None,
) -> Exported:
    """The best trial's settings in `fmt` (default: from output's suffix, else json); with `output`,
    also written there, the trial's kept weights (looked for under `checkpoint_root`) copied
    beside it."""
    fmt = output_format(output, fmt)
    ranked = _top(study, top, storage_url)  # one read of the study, however many trials it holds
    values = _settings(study, ranked, storage_url)
    if "data" not in values:
        print(
            f"hpsearch: study {study.study_name!r} does not record its data source; pass "
            f"{given('data', 'PATH')} to train, or it trains on its default data",
            file=sys.stderr,
        )
    _say_what_a_retrain_changes(values[PROVENANCE]["search_data"], study)
    _dumped(values, fmt, ranked)  # refused before a weights file beside the output is touched
    _name_weights(values, study, ranked[0], output, checkpoint_root)
    text = _dumped(values, fmt, ranked)
    if output is not None:
        output_file.write_text(output, text, named("path"))
    return Exported(text, fmt, values[PROVENANCE]["trial"], values)


def _dumped(values: dict[str, Any], fmt: str, ranked: list[FrozenTrial]) -> str:
    """The settings as `fmt`'s text. A trial another tool ran may record a configuration TOML
    cannot hold (None in a list): one line that says which formats can."""
    try:
        return dump_settings(values, fmt)
    except (TypeError, ValueError) as error:
        numbers = ", ".join(str(trial.number) for trial in ranked)
        trials = f"trial {numbers}" if len(ranked) == 1 else f"trials {numbers}"
        raise ConfigError(
            f"the settings of {trials} cannot be written as {fmt}: {error}; export them as json "
            f"or yaml instead: a {named('path')} ending .json or .yaml, or "
            f"{given('format', 'json')}"
        ) from None


def output_format(output: Path | None, chosen: str | None) -> str:
    """The format to write: as chosen, which must agree with output's suffix, else json."""
    if output is None:
        return chosen or "json"
    from_suffix = format_of(output)  # train reads a file by its suffix, so the two must agree
    if chosen is not None and chosen != from_suffix:
        raise ConfigError(
            f"{given('format', chosen)} does not match {output}, which train would read as "
            f"{from_suffix}; name the file .{chosen} or leave {named('format')} out"
        )
    return from_suffix


def _say_what_a_retrain_changes(search_data: dict[str, Any], study: optuna.Study) -> None:
    changes = []
    cap = search_data["per_class"]
    # A cap above every class's count left all images in: fewer training images in all than the
    # cap of one class say so (the study records the total it trained on, not each class's)
    trained_on = (data_fingerprint(study) or {}).get("train_images")
    if cap is not None and not (isinstance(trained_on, int) and trained_on < cap):
        changes.append(f"the search capped training images at {cap} a class")
    if search_data["validation_fraction"] is not None:
        changes.append(
            f"the search scored on {search_data['validation_fraction']:.0%} of train/, not val/"
        )
    if changes:
        print(
            f"hpsearch: {'; '.join(changes)}; `hpsearch train --config` with this file trains on "
            "every training image and scores on val/ (both recorded under provenance.search_data)",
            file=sys.stderr,
        )


def _name_weights(
    values: dict[str, Any],
    study: optuna.Study,
    trial: FrozenTrial,
    output: Path | None,
    checkpoint_root: Path | None,
) -> None:
    """Name the trial's kept weights in provenance, copying them beside the output file; without
    them, no other trial's weights stay beside it (`evaluate` would score the wrong model). Weights
    that are unusable (damaged in a crash, or another trial's) are left behind, not the settings:
    they are what the user came for, and what `hpsearch train --config` needs."""
    if checkpoint_root is None:
        _without_kept_weights(values, study, trial, output, said=[])
        return
    try:
        weights = trial_files.kept_weights(checkpoint_root, study, trial)
    except (trial_files.ForeignWeights, ConfigError) as error:
        _without_kept_weights(values, study, trial, output, said=[str(error)])
        return
    if weights is None:
        said = _why_missing(study, trial, checkpoint_root)
        _without_kept_weights(values, study, trial, output, said)
        return
    _weights_epoch(values[PROVENANCE], trial)
    if output is None:
        values[PROVENANCE]["weights"] = str(weights)
    else:
        copy = weights_beside(output)
        output_file.copy_file(weights, copy, "weights file")
        # Beside the settings file, wherever the pair is moved
        values[PROVENANCE]["weights"] = copy.name


def _weights_epoch(provenance: dict[str, Any], trial: FrozenTrial) -> None:
    """The weights a trial keeps are its last epoch's, its value its best epoch's: provenance says
    which epoch the weights are and what they scored, and a line says so where the two differ
    (`evaluate` scoring the weights below the value read as a fault)."""
    if not trial.intermediate_values:
        return
    epoch = max(trial.intermediate_values)
    score = trial.intermediate_values[epoch]
    provenance["weights_epoch"], provenance["weights_val_top1"] = epoch, score
    best = provenance.get("best_epoch")
    if isinstance(best, int) and best != epoch and trial.value is not None:
        print(
            f"hpsearch: trial {trial.number}'s weights are its last epoch's (epoch {epoch}, val "
            f"top-1 {score:.2%}); its value, {trial.value:.2%}, is its best epoch's (epoch "
            f"{best}): `hpsearch evaluate` scores the weights",
            file=sys.stderr,
        )


def _without_kept_weights(
    values: dict[str, Any],
    study: optuna.Study,
    trial: FrozenTrial,
    output: Path | None,
    said: list[str],
) -> None:
    """Say why the weights are missing (`said`), and settle a weights file an earlier export left
    beside the output, in the same warning line: kept if it records this very trial (its
    checkpoints may be gone since), else removed, since `evaluate` would score it as this trial's
    model."""
    beside = None if output is None else weights_beside(output)
    if beside is not None and beside.is_file():
        recorded = _owner_of(beside)
        expected = trial_files.owner(study, trial)
        if expected is not None and recorded == expected:
            values[PROVENANCE]["weights"] = beside.name
            said.append(f"kept {beside}, which records that very trial (an earlier export)")
            print(f"hpsearch: {'; '.join(said)}", file=sys.stderr)
            return
        beside.unlink()
        said.append(f"removed {beside}, {_whose(recorded, expected)}")
    if said:
        said.append("exporting its settings only, which `hpsearch train --config` trains again")
        print(f"hpsearch: {'; '.join(said)}", file=sys.stderr)


def _why_missing(study: optuna.Study, trial: FrozenTrial, checkpoint_root: Path) -> list[str]:
    not_saved = trial.user_attrs.get(attrs.WEIGHTS_NOT_SAVED)
    if not_saved:
        return [
            f"trial {trial.number}'s weights are missing: they were never written ({not_saved})"
        ]
    written = trial.user_attrs.get(attrs.WEIGHTS)
    if written:
        folder = trial_files.study_folder(checkpoint_root, study)
        return [f"trial {trial.number}'s weights are not in {folder}{_written_to(written, folder)}"]
    return []


def _written_to(written: object, folder: Path) -> str:
    """Where the trial's worker said it wrote the weights, and the --checkpoint-dir that finds
    them there: read from the storage, so only ever shown (quoted), never opened."""
    flag = named("checkpoint_dir")
    if not isinstance(written, str):
        return f" (pass {flag} if the workers wrote them elsewhere)"
    path = Path(written)
    # ROOT/STUDY-ID/trial-N/weights.pt: ROOT is the folder to pass, where the shape is ours
    root = path.parents[2] if len(path.parents) > 2 else None
    ours = root is not None and path.parent.parent.name == folder.name
    return f"; its worker wrote them to {written!r}" + (
        f": pass {flag} {shlex.quote(str(root))} if that folder is here"
        if ours
        else f": pass {flag} with the folder that holds {folder.name} there"
    )


def _owner_of(weights: Path) -> dict[str, Any] | None:
    try:
        return read_owner(weights)
    except ConfigError:  # no weights file at all: it records no trial to keep it for
        return None


def _whose(recorded: dict[str, Any] | None, expected: dict[str, Any] | None) -> str:
    if not isinstance(recorded, dict) or "trial" not in recorded:
        return "which records no trial"
    study = recorded.get("study")
    if (
        expected is not None
        and study == expected["study"]
        and recorded.get("study_id") != expected["study_id"]
    ):
        # Two studies of one name (two storages, or one deleted and made again): the name alone
        # would read as this study's own trial
        return (
            f"which holds trial {recorded['trial']} of another study also named {study!r} "
            "(in another storage, or one deleted and made again), not this one"
        )
    return f"which holds trial {recorded['trial']} of study {study!r}, not this one"
