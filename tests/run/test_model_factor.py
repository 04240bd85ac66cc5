"""The model as a factor of a search, from the command line: a space over models samples the model
and records it, status, the report, export and the dashboard's note carry it, the exported winner
retrains and evaluates as that model, and the seed's model factor study runs (1 epoch, 16 px, a
dozen images)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import optuna
import optuna_dashboard
import pytest
from optuna.trial import TrialState, create_trial

from search.attrs import trial_config
from search.cli import main
from search.results import figures
from search.results.report_data import get_factor_info, trial_curves
from search.studyfile.train_file import read_settings
from tests.helpers import ROOT
from tests.helpers.images import make_image_folder
from tests.helpers.studies import write_study

MODELS = ("resnet18", "resnet34")
# Both models run whatever the sampler draws: each warm start names one
SPACE = f'optimizer = ["adam"]\nlr = {{ low = 1e-3, high = 1e-2 }}\nmodel = {list(MODELS)}'
WARM_STARTS = "".join(
    f'\n[[warm_start]]\nmodel = "{model}"\noptimizer = "adam"\nlr = 3e-3\n' for model in MODELS
)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Searched(NamedTuple):
    root: Path
    images: Path
    url: str
    study: optuna.Study

    def flags(self) -> list[str]:
        """Where every command of these tests keeps its files: inside the test's folder."""
        return ["--cache-dir", str(self.root / "cache"), "--device", "cpu"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model-factor")
    return make_image_folder(
        root / "images", classes=3, train_per_class=4, val_per_class=4, odd_formats=False
    )


@pytest.fixture(scope="module")
def searched(images) -> Searched:
    root = images.parent
    url = f"sqlite:///{root / 'studies.db'}"
    path = write_study(
        root,
        images,
        name="models",
        trials=3,
        epochs=1,
        space=SPACE,
        extra=WARM_STARTS,
        pruner='kind = "none"',
    )
    status = main(
        [
            "run",
            str(path),
            "--storage",
            url,
            "--image-size",
            "16",
            "--checkpoint-dir",
            str(root / "checkpoints"),
            "--cache-dir",
            str(root / "cache"),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert status == 0
    return Searched(root, images, url, optuna.load_study(study_name="models", storage=url))


def test_a_space_over_models_samples_the_model_and_records_it(searched, capsys):
    trials = searched.study.get_trials(deepcopy=False)
    assert len(trials) == 3 and all(trial.state == TrialState.COMPLETE for trial in trials)
    for trial in trials:
        assert trial.params["model"] in MODELS
        assert trial.distributions["model"].choices == MODELS
        assert trial.user_attrs["config"]["model"] == trial.params["model"]
    assert {trial.params["model"] for trial in trials} == set(MODELS)
    status, out, _ = run_cli(capsys, "status", "--storage", searched.url, "--json")
    best = searched.study.best_trial
    assert status == 0 and json.loads(out)[0]["best_config"]["model"] == best.params["model"]


def test_the_report_draws_curves_and_effects_per_model(searched):
    info = get_factor_info(trial_curves([searched.study]), "model")
    assert info.scale == "categorical" and info.levels == MODELS and len(info.curves) == 3
    curves = figures.factor_curves_figure(info)
    assert sorted(trace.name for trace in curves.data if trace.showlegend) == list(MODELS)
    effect = figures.factor_effect_figure(info)
    assert [trace.type for trace in effect.data] == ["box", "box"]
    assert sum(len(trace.y) for trace in effect.data) == 3


def test_a_trial_recorded_before_the_model_was_shows_as_resnet18():
    old = create_trial(
        value=0.5,
        user_attrs={"config": {"optimizer": "adam", "lr": 3e-3, "epochs": 1}},
        intermediate_values={1: 0.5},
    )
    study = optuna.create_study(study_name="old", direction="maximize")
    study.add_trial(old)
    assert trial_config(study.best_trial)["model"] == "resnet18"
    assert get_factor_info(trial_curves([study]), "model").levels == ("resnet18",)


def test_the_exported_winner_evaluates_and_retrains_as_its_model(searched, capsys):
    best = searched.study.best_trial
    exported = searched.root / "best.toml"
    status, _, err = run_cli(
        capsys,
        "export",
        "--study",
        "models",
        "--storage",
        searched.url,
        "-o",
        exported,
        "--checkpoint-dir",
        searched.root / "checkpoints",
    )
    assert status == 0, err
    settings, provenance = read_settings(exported)
    assert settings["model"] == best.params["model"] and provenance["trial"] == best.number
    # The dashboard shows the exported settings in the study's note
    note = optuna_dashboard.get_note(optuna.load_study(study_name="models", storage=searched.url))
    assert f'model = "{best.params["model"]}"' in note
    weights = searched.root / provenance["weights"]
    status, out, err = run_cli(
        capsys, "evaluate", weights, "--data", searched.images, *searched.flags(), "--json"
    )
    assert status == 0, err
    assert json.loads(out)["top1"] == pytest.approx(best.value, abs=1e-9)
    status, out, err = run_cli(
        capsys,
        "train",
        "--config",
        exported,
        "--data",
        searched.images,
        "--checkpoint-dir",
        searched.root / "retrain",
        *searched.flags(),
        "--json",
    )
    assert status == 0, err
    assert json.loads(out.strip().splitlines()[-1])["config"]["model"] == best.params["model"]


def test_the_model_factor_study_runs(images, capsys):
    url = f"sqlite:///{images.parent / 'factor.db'}"
    status, _, err = run_cli(
        capsys,
        "run",
        ROOT / "studies" / "factor_model.toml",
        "--data",
        images,
        "--epochs",
        "1",
        "--image-size",
        "16",
        "--storage",
        url,
        "--checkpoint-dir",
        images.parent / "factor-checkpoints",
        "--cache-dir",
        images.parent / "cache",
        "--device",
        "cpu",
        "--no-progress",
    )
    assert status == 0, err
    trials = optuna.load_study(study_name="factor-model", storage=url).get_trials()
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 3
    configs = [trial.user_attrs["config"] for trial in trials]
    assert [config["model"] for config in configs] == ["resnet18", "resnet34", "resnet50"]
    assert all(
        (config["optimizer"], config["lr"], config["eps"], config["batch_size"])
        == ("ranger", 8e-3, 1e-6, 64)
        for config in configs
    )
