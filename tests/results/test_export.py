"""`hpsearch export`: the best trial's settings in each format, retrained by `train --config` as
they are."""

from __future__ import annotations

import json

import optuna
import optuna_dashboard
import pytest
from optuna.trial import TrialState, create_trial

from search import attrs
from search.cli import main
from search.results.evaluate import evaluate_weights
from search.studyfile.train_file import read_settings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ranked(small_search):
    study = optuna.load_study(study_name=small_search.study, storage=small_search.url)
    return sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda trial: -trial.value)


def run_cli(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("suffix", ["toml", "json", "yaml"])
def test_each_format_parses_and_train_uses_the_same_settings(
    small_search, ranked, tmp_path, capsys, suffix
):
    best = ranked[0]
    path = tmp_path / f"best.{suffix}"
    status, _, err = run_cli(
        capsys, "export", "--storage", small_search.url, "--study", small_search.study, "-o", path
    )
    assert status == 0, err
    settings, provenance = read_settings(path)
    expected = {**best.user_attrs["config"], "data": str(small_search.images)}
    if suffix == "toml":  # TOML has no null: an unset setting is left out
        expected = {key: value for key, value in expected.items() if value is not None}
    assert settings == expected
    assert provenance["study"] == small_search.study and provenance["trial"] == best.number
    assert provenance["value"] == best.value and provenance["date"].startswith(
        str(best.datetime_complete.date())
    )
    assert provenance["code_version"] == best.user_attrs["code_version"]
    assert provenance["data_fingerprint"]["classes"] == ["class_0", "class_1", "class_2"]
    assert provenance["storage"] == small_search.url
    status, out, err = run_cli(
        capsys,
        "train",
        "--config",
        path,
        "--cache-dir",
        small_search.cache_dir,
        "--device",
        "cpu",
        "--json",
    )
    assert status == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["config"] == best.user_attrs["config"]
    assert (
        summary["data"] == str(small_search.images)
        and summary["provenance"]["trial"] == best.number
    )


def test_json_goes_to_stdout_and_top_k_lists_the_runners_up_in_rank_order(
    small_search, ranked, capsys
):
    status, out, err = run_cli(
        capsys, "export", "--storage", small_search.url, "--study", small_search.study, "--top", "3"
    )
    assert status == 0, err
    exported = json.loads(out)
    assert exported["optimizer"] == ranked[0].user_attrs["config"]["optimizer"]
    runners_up = exported["provenance"]["runners_up"]
    assert [entry["trial"] for entry in runners_up] == [trial.number for trial in ranked[1:3]]
    assert [entry["value"] for entry in runners_up] == sorted(
        (entry["value"] for entry in runners_up), reverse=True
    )
    assert runners_up[0]["settings"] == ranked[1].user_attrs["config"]
    note = optuna_dashboard.get_note(
        optuna.load_study(study_name=small_search.study, storage=small_search.url)
    )
    assert note.count("## Best parameters") == 1 and f'"trial": {ranked[0].number}' in note


def test_the_best_trials_kept_weights_travel_with_the_export(
    small_search, ranked, tmp_path, capsys
):
    best = ranked[0]
    path = tmp_path / "best.toml"
    checkpoints = small_search.images.parent / "checkpoints"
    err = export_to(capsys, small_search.url, small_search.study, path, checkpoints)
    _, provenance = read_settings(path)
    assert provenance["weights"] == "best.weights.pt"
    evaluation = evaluate_weights(
        tmp_path / "best.weights.pt",
        small_search.images,
        cache_dir=small_search.cache_dir,
        device="cpu",
        progress=False,
    )
    # The weights are the last epoch's, the trial's value its best epoch's: the file says which
    last_epoch = max(best.intermediate_values)
    assert evaluation.top1 == pytest.approx(best.intermediate_values[last_epoch], abs=1e-9)
    assert provenance["weights_epoch"] == last_epoch
    assert provenance["weights_val_top1"] == pytest.approx(evaluation.top1, abs=1e-9)
    differ = f"trial {best.number}'s weights are its last epoch's (epoch {last_epoch}, val top-1 "
    assert (differ in err) == (provenance["best_epoch"] != last_epoch), err


def test_a_study_without_a_complete_trial_is_a_one_line_error(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    study = optuna.create_study(study_name="all-failed", storage=url, direction="maximize")
    study.add_trial(create_trial(state=TrialState.FAIL))
    # Stopped (a Ctrl-C) and queued to resume: counted as status counts it, not as failed
    study.add_trial(create_trial(state=TrialState.FAIL))
    study.enqueue_trial({}, user_attrs={attrs.RETRIED_FROM: 1})
    status, out, err = run_cli(capsys, "export", "--storage", url, "--study", "all-failed")
    assert status == 2 and out == ""
    assert "'all-failed' has no complete trial to export (1 fail, 1 waiting, 1 stopped)" in err
    # with the storage it looked in: without it, the command looks in the default
    listing = f"`hpsearch trials --study all-failed --storage {url}` lists each trial's state"
    assert listing in err
    assert len(err.strip().splitlines()) == 1


def test_a_study_without_its_data_source_exports_with_a_warning(small_search, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    optuna.copy_study(
        from_study_name=small_search.study, from_storage=small_search.url, to_storage=url
    )
    study = optuna.load_study(study_name=small_search.study, storage=url)
    study.set_user_attr("data_source", None)
    status, out, err = run_cli(capsys, "export", "--storage", url, "--study", small_search.study)
    assert (
        status == 0 and "data" not in json.loads(out) and "does not record its data source" in err
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["-o", "best.toml", "--format", "json"], "--format json does not match"),
        (["-o", "best.txt"], "cannot tell the format of best.txt"),
        (["--top", "0"], "--top must be at least 1, but got 0"),
        (["--study", "nope"], "no study named 'nope'"),
    ],
)
def test_bad_requests_are_one_line_errors(
    small_search, tmp_path, capsys, monkeypatch, flags, message
):
    monkeypatch.chdir(tmp_path)
    status, _, err = run_cli(
        capsys, "export", "--storage", small_search.url, "--study", small_search.study, *flags
    )
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_weights_looked_for_elsewhere_are_said_where_their_worker_wrote_them(
    small_search, tmp_path, capsys
):
    """An export that looks in another folder (the --checkpoint-dir of a SLURM search left out)
    names where the trial's worker wrote the weights and the flag that finds them there."""
    path = tmp_path / "best.toml"
    err = export_to(capsys, small_search.url, small_search.study, path, tmp_path / "elsewhere")
    root = small_search.images.parent / "checkpoints"
    [line] = [line for line in err.splitlines() if "weights are not in" in line]
    assert f"its worker wrote them to '{root}/" in line
    assert f"pass --checkpoint-dir {root} if that folder is here" in line
    export_to(capsys, small_search.url, small_search.study, path, root)
    assert path.with_name("best.weights.pt").is_file()


def export_to(capsys, url: str, study: str, path, checkpoints) -> str:
    status, _, err = run_cli(
        capsys,
        "export",
        "--storage",
        url,
        "--study",
        study,
        "-o",
        path,
        "--checkpoint-dir",
        checkpoints,
    )
    assert status == 0, err
    return err


def test_weights_an_earlier_export_left_beside_the_file_are_not_taken_for_another_trials(
    small_search, ranked, tmp_path, capsys
):
    path, weights = tmp_path / "out" / "best.toml", tmp_path / "out" / "best.weights.pt"
    export_to(
        capsys,
        small_search.url,
        small_search.study,
        path,
        small_search.images.parent / "checkpoints",
    )
    assert weights.is_file()
    # Another study's best trial, whose weights are not where the export looks
    url = f"sqlite:///{tmp_path / 'other.db'}"
    other = optuna.create_study(study_name="other", storage=url, direction="maximize")
    config = {**ranked[0].user_attrs["config"], "lr": 0.5}
    other.add_trial(
        create_trial(value=0.9, user_attrs={"config": config, "weights_path": "/gone/weights.pt"})
    )
    err = export_to(capsys, url, "other", path, tmp_path / "no-checkpoints")
    assert not weights.exists(), "evaluate would score trial 0 of 'other' with another's model"
    # One warning says both
    [line] = [line for line in err.splitlines() if line.startswith("hpsearch: trial 0's")]
    assert "trial 0's weights are not in" in line
    assert f"removed {weights}, which holds trial {ranked[0].number} of study 'factors'" in line
    assert "exporting its settings only" in line
    settings, provenance = read_settings(path)
    assert settings["lr"] == 0.5 and "weights" not in provenance


def test_an_earlier_export_of_the_same_trials_weights_is_kept_and_named(
    small_search, ranked, tmp_path, capsys
):
    path, weights = tmp_path / "best.toml", tmp_path / "best.weights.pt"
    export_to(
        capsys,
        small_search.url,
        small_search.study,
        path,
        small_search.images.parent / "checkpoints",
    )
    before = weights.read_bytes()
    # The checkpoints are gone since (or elsewhere): the copy beside the file is still that trial's
    err = export_to(capsys, small_search.url, small_search.study, path, tmp_path / "elsewhere")
    assert f"kept {weights}, which records that very trial" in err
    assert weights.read_bytes() == before
    _, provenance = read_settings(path)
    assert provenance["trial"] == ranked[0].number and provenance["weights"] == "best.weights.pt"


def test_weights_of_a_last_epoch_below_the_best_are_said_to_be_the_last_epochs(capsys):
    # A trial's value is its best epoch's, its kept weights its last epoch's: evaluate scoring the
    # exported weights below the exported value read as a fault, nothing said (a trial made by
    # hand, outside a study, is numbered -1)
    from search.results.export import _weights_epoch

    trial = create_trial(value=0.6667, intermediate_values={1: 0.6667, 2: 0.3333})
    provenance = {"best_epoch": 1}
    _weights_epoch(provenance, trial)

    assert (provenance["weights_epoch"], provenance["weights_val_top1"]) == (2, 0.3333)
    assert capsys.readouterr().err == (
        "hpsearch: trial -1's weights are its last epoch's (epoch 2, val top-1 33.33%); its value, "
        "66.67%, is its best epoch's (epoch 1): `hpsearch evaluate` scores the weights\n"
    )


@pytest.mark.parametrize("train_images, said", [(2000, True), (120, False)])
def test_a_cap_per_class_is_said_to_change_a_retrain_only_where_it_can_have_cut(
    capsys, train_images, said
):
    # 120 images in all cannot have reached a cap of 200 a class: "capped at 200" misled
    from search.results.export import _say_what_a_retrain_changes

    study = optuna.create_study(direction="maximize")
    study.set_user_attr(attrs.DATA_FINGERPRINT, {"train_images": train_images})
    _say_what_a_retrain_changes({"per_class": 200, "validation_fraction": None}, study)

    assert ("the search capped training images at 200 a class" in capsys.readouterr().err) == said
