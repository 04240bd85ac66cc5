"""The model factor end to end on one machine: `hpsearch train --model NAME` trains ResNet-18, -34
and -50 a step each, the weights file records the model, and `hpsearch evaluate` rebuilds that
network from it (the val top-1 that training reported comes back exactly); a weights file of an
older hpsearch, which names no model, is a ResNet-18."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from search.cli import main
from tests.helpers.images import make_image_folder

MODELS = ("resnet18", "resnet34", "resnet50")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    # 12 training images and a batch of 16: one step; 16 px, the smallest size the trainer takes
    root = tmp_path_factory.mktemp("model-weights")
    return make_image_folder(
        root / "images", classes=3, train_per_class=4, val_per_class=4, odd_formats=False
    )


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def train_one_step(capsys, images: Path, folder: Path, *flags) -> dict:
    status, out, err = run_cli(
        capsys,
        "train",
        "--data",
        images,
        "--cache-dir",
        images.parent / "cache",
        "--image-size",
        "16",
        "--batch-size",
        "16",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--checkpoint-dir",
        folder,
        "--json",
        *flags,
    )
    assert status == 0, err
    return json.loads(out.strip().splitlines()[-1])


def evaluate(capsys, images: Path, weights: Path) -> dict:
    status, out, err = run_cli(
        capsys,
        "evaluate",
        weights,
        "--data",
        images,
        "--cache-dir",
        images.parent / "cache",
        "--device",
        "cpu",
        "--json",
    )
    assert status == 0, err
    return json.loads(out)


@pytest.mark.parametrize("model", MODELS)
def test_each_model_trains_a_step_and_evaluates_from_its_weights_file(
    model, images, tmp_path, capsys
):
    summary = train_one_step(capsys, images, tmp_path / "run", "--model", model)
    assert summary["config"]["model"] == model
    weights = tmp_path / "run" / "weights.pt"
    payload = torch.load(weights, weights_only=True)
    assert payload["architecture"] == model and payload["config"]["model"] == model
    result = evaluate(capsys, images, weights)
    assert result["model"] == model
    # Another network, or the right one freshly initialised, would not score the same to the bit
    assert result["top1"] == pytest.approx(summary["final_val_top1"], abs=1e-9)
    assert result["val_loss"] == pytest.approx(summary["history"][-1]["val_loss"], rel=1e-5)


def test_a_weights_file_that_names_no_model_is_a_resnet18(images, tmp_path, capsys):
    summary = train_one_step(capsys, images, tmp_path / "run")
    assert summary["config"]["model"] == "resnet18", "the default model"
    payload = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    # As hpsearch wrote it before a run could name its model
    del payload["architecture"]
    del payload["config"]["model"]
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    result = evaluate(capsys, images, old)
    assert result["model"] == "resnet18"
    assert result["top1"] == pytest.approx(summary["final_val_top1"], abs=1e-9)


def test_weights_that_do_not_fit_the_model_they_name_are_refused(images, tmp_path, capsys):
    train_one_step(capsys, images, tmp_path / "run", "--model", "resnet34")
    payload = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    wrong = tmp_path / "wrong.pt"
    torch.save({**payload, "architecture": "resnet50"}, wrong)
    status, _, err = run_cli(capsys, "evaluate", wrong, "--data", images, "--device", "cpu")
    assert status == 2 and f"{wrong} does not fit a resnet50 with 3 classes" in err


def test_an_unknown_model_is_one_line_naming_close_matches_before_any_training(
    images, tmp_path, capsys
):
    status, out, err = run_cli(
        capsys, "train", "--data", images, "--model", "resnt34", "--checkpoint-dir", tmp_path / "r"
    )
    assert status == 2 and out == ""
    assert err.strip() == (
        "hpsearch: error: unknown model 'resnt34'; close matches: resnet34, resnet50, resnet18 "
        "(any name of torchvision.models.list_models(module=torchvision.models) works)"
    )
    assert not (tmp_path / "r").exists()


def test_a_model_that_needs_larger_images_is_refused_before_any_training(images, tmp_path, capsys):
    status, out, err = run_cli(
        capsys,
        "train",
        "--data",
        images,
        "--model",
        "inception_v3",
        "--image-size",
        "32",
        "--checkpoint-dir",
        tmp_path / "r",
    )
    assert status == 2 and out == "" and not (tmp_path / "r").exists()
    assert err.strip() == (
        "hpsearch: error: model 'inception_v3' needs images of at least 75 px, "
        "but got image_size=32"
    )
