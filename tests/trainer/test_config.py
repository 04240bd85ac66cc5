"""Training settings a settings file may get wrong are refused naming the setting, before any
data is decoded: never a traceback, never a value quietly read as another."""

from __future__ import annotations

import pytest
import torch

from trainer import ConfigError, TrainConfig
from trainer.model import build_model


def test_an_optimizer_that_is_not_a_name_is_refused_naming_it():
    # `optimizer: [sgd]` in a YAML file, or `optimizer = ["sgd"]` in TOML
    with pytest.raises(ConfigError, match=r"unknown optimizer \['sgd'\]") as refused:
        TrainConfig(optimizer=["sgd"])  # type: ignore[arg-type]
    assert refused.value.setting == "optimizer"


@pytest.mark.parametrize("value", ["false", "no", 0, None])
def test_nesterov_must_be_true_or_false(value):
    """ "false" from a JSON file or "no" from a quoted YAML value is true to Python: SGD would
    have trained with Nesterov momentum, and the trial recorded nesterov='false'."""
    with pytest.raises(ConfigError, match=f"nesterov must be true or false.*{value!r}") as refused:
        TrainConfig(optimizer="sgd", momentum=0.9, nesterov=value)
    assert refused.value.setting == "nesterov"


@pytest.mark.parametrize("model", ["vit_b_16", "maxvit_t"])
def test_a_model_built_for_one_side_refuses_any_other(model):
    """torchvision builds a ViT or MaxViT for 224 px: 256 px passed the smallest-side check, then
    failed in the first training step with an AssertionError or a RuntimeError of shapes."""
    with pytest.raises(ConfigError, match=f"{model}' takes images of exactly 224 px"):
        TrainConfig(model=model, image_size=256)
    config = TrainConfig(model=model, image_size=224)
    with torch.device("meta"):  # the shapes only: no weights, no arithmetic
        network = build_model(3, torch.device("meta"), config.model).eval()
        assert network(torch.empty(2, 3, 224, 224)).shape == (2, 3)


def test_an_integer_past_a_float_s_range_is_refused_as_no_finite_number():
    # 10**400 in a JSON settings file: math.isfinite raised OverflowError, a traceback
    with pytest.raises(ConfigError, match="lr must be a finite number, but got an integer of 401"):
        TrainConfig(lr=10**400)
