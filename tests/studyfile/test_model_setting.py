"""`model` in a study file: fixed for every trial in [train], searched in [space], named by each of
[[points]]; every mistake is one line naming the file, the key and the close matches; a study
file that names no model stores the same document as one written before model existed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from search.studyfile import StudyFileError, load_study_config
from search.studyfile.document import differences, from_document, to_document
from tests.helpers import ROOT

STUDY: dict[str, Any] = {
    "study": {"name": "models", "trials": 2},
    "data": {"source": "images", "image_size": 32, "batch_size": 8},
    "train": {"epochs": 2},
    "space": {"optimizer": ["ranger"], "lr": {"low": 1e-3, "high": 0.1}},
}
POINTS = [
    {"model": "resnet18", "optimizer": "ranger", "lr": 8e-3, "eps": 1e-6},
    {"model": "resnet34", "optimizer": "ranger", "lr": 8e-3, "eps": 1e-6},
]


def load(tmp_path: Path, **changes: Any):
    """STUDY with tables changed: a section's keys merged in, None drops a section."""
    document = copy.deepcopy(STUDY)
    for section, value in changes.items():
        if value is None:
            document.pop(section)
        elif isinstance(value, dict):
            document.setdefault(section, {}).update(value)
        else:
            document[section] = value
    path = tmp_path / "study.toml"
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    return load_study_config(path)


def error(tmp_path: Path, **changes: Any) -> str:
    with pytest.raises(StudyFileError) as caught:
        load(tmp_path, **changes)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'study.toml'}: ") and "\n" not in message
    return message.split(": ", 1)[1]


def test_train_model_fixes_every_trials_model(tmp_path):
    config = load(tmp_path, train={"model": "resnet34"})
    assert config.train.model == "resnet34" and config.space.models is None
    assert config.train_config({"optimizer": "ranger", "lr": 0.01}).model == "resnet34"
    assert to_document(config)["train"]["model"] == "resnet34"


def test_a_space_over_models_reads_back_from_its_stored_document(tmp_path):
    config = load(tmp_path, space={"model": ["resnet18", "resnet34", "resnet50"]})
    assert config.space.models == ("resnet18", "resnet34", "resnet50")
    document = to_document(config)
    assert document["space"]["model"] == ["resnet18", "resnet34", "resnet50"]
    assert from_document(document, "study").space == config.space
    point = {"optimizer": "ranger", "lr": 0.01, "model": "resnet50"}
    assert config.train_config(point).model == "resnet50"


def test_a_study_that_names_no_model_stores_what_older_studies_stored(tmp_path):
    config = load(tmp_path)
    assert config.train.model == "resnet18"
    document = to_document(config)
    assert "model" not in document["train"] and "model" not in document["space"]
    # A study created before model existed recorded exactly this; joining it with the file is fine
    assert (
        differences(document, to_document(load(tmp_path, train={"model": "resnet18"})), "f") == []
    )
    assert differences(document, to_document(load(tmp_path, train={"model": "resnet34"})), "f") == [
        "train.model: unset in the study, 'resnet34' in f"
    ]


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {"train": {"model": "resnt34"}},
            "train.model: unknown model 'resnt34'; close matches: resnet34, resnet50, resnet18 "
            "(any name of torchvision.models.list_models(module=torchvision.models) works)",
        ),
        (
            {"space": {"model": ["resnet18", "ResNet50"]}},
            "space.model: unknown model 'ResNet50'; close matches: resnet50, resnet152, resnet101",
        ),
        (
            {"space": None, "points": [POINTS[0], {**POINTS[1], "model": "resnet35"}]},
            "points[1].model: unknown model 'resnet35'; close matches: resnet50, resnet34",
        ),
        ({"train": {"model": 18}}, "train.model must be a string, but got 18 (an integer)"),
        (
            {"train": {"model": "alexnet"}},
            "train.model: model 'alexnet' needs images of at least 63 px, but got image_size=32",
        ),
        (
            {"space": {"model": ["resnet18", "inception_v3"]}},
            "space.model: model 'inception_v3' needs images of at least 75 px, but got "
            "image_size=32",
        ),
        (
            {"space": None, "points": [POINTS[0], {**POINTS[1], "model": "vit_b_16"}]},
            "points[1]: model 'vit_b_16' takes images of exactly 224 px (torchvision builds it "
            "for that side), but got image_size=32",
        ),
        (
            {"space": {"model": "resnet34"}},
            "space.model must be a list of strings, but got 'resnet34' (a string)",
        ),
        ({"space": {"model": []}}, "space.model must name at least one model, but got none"),
        (
            {"space": {"model": ["resnet18", "resnet18"]}},
            "space.model must name each model once, but repeats resnet18",
        ),
        (
            {"train": {"model": "resnet34"}, "space": {"model": ["resnet18", "resnet50"]}},
            "train.model must be left out when space.model names the models, but got 'resnet34'",
        ),
        (
            {"train": {"model": "resnet18"}, "space": {"model": ["resnet18", "resnet50"]}},
            "train.model must be left out when space.model names the models, but got 'resnet18'",
        ),
        (
            {"train": {"model": "resnet50"}, "space": None, "points": POINTS},
            "train.model must be left out when [[points]] names the models, but got 'resnet50'",
        ),
        (
            {"space": None, "points": [POINTS[0], {**POINTS[1], "model": None}]},
            "points[1].model is required, since points[0] names a model",
        ),
        (
            {
                "space": {"model": ["resnet18", "resnet34"]},
                "warm_start": [POINTS[0] | {"model": "resnet50"}],
            },
            "warm_start[0].model must be one of space.model (resnet18, resnet34), but got "
            "'resnet50'",
        ),
        (
            {"warm_start": [POINTS[1]]},
            "warm_start[0].model is not searched, since [space] has no model; set [train] model",
        ),
    ],
)
def test_each_model_mistake_is_one_line_naming_the_key(tmp_path, changes, expected):
    changes = {  # TOML has no null: a point's None is a key left out
        key: [{k: v for k, v in point.items() if v is not None} for point in value]
        if isinstance(value, list)
        else value
        for key, value in changes.items()
    }
    assert expected in error(tmp_path, **changes)


def test_the_model_factor_study_is_the_seeds_comparison():
    config = load_study_config(ROOT / "studies" / "factor_model.toml")
    assert [point["model"] for point in config.points] == ["resnet18", "resnet34", "resnet50"]
    assert all(
        {key: point[key] for key in ("optimizer", "lr", "eps")}
        == {"optimizer": "ranger", "lr": 8e-3, "eps": 1e-6}
        for point in config.points
    )
    assert (config.train.epochs, config.train.batch_size, config.train.image_size) == (20, 64, 128)
    assert config.study.trials == 3 and config.pruner.kind == "none"
    assert [config.train_config(point).model for point in config.points] == [
        "resnet18",
        "resnet34",
        "resnet50",
    ]


def test_a_model_is_judged_at_the_studys_image_size(tmp_path):
    vit = {**POINTS[0], "model": "vit_b_16"}
    config = load(tmp_path, data={"image_size": 224}, space=None, points=[POINTS[0], vit])
    assert config.train_config(vit).model == "vit_b_16"
    assert "takes images of exactly 224 px" in str(
        pytest.raises(StudyFileError, config.with_overrides, image_size=128).value
    )
