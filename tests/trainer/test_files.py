"""A weights file's owner, read without torch: the same dict torch.load finds, and nothing built
that a weights file does not hold."""

from __future__ import annotations

import collections

import pytest
import torch

from trainer.errors import ConfigError
from trainer.files import read_owner
from trainer.weights import load_weights

OWNER = {"study_id": "1f2e3d4c", "study": "quick", "trial": 3, "params": {"lr": 0.01}}


def test_the_owner_read_without_torch_is_the_one_torch_loads(tmp_path):
    path = tmp_path / "weights.pt"
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    payload = {"architecture": "resnet18", "classes": ["a", "b"], "image_size": 32}
    torch.save({**payload, "config": {}, "owner": OWNER, "model": network.state_dict()}, path)
    assert read_owner(path) == load_weights(path).owner == OWNER
    torch.save({**payload, "model": network.state_dict()}, path)  # an older file: no owner
    assert read_owner(path) is None


@pytest.mark.parametrize(
    "content",
    [
        b"not a zip at all",
        {"optimizer": {}, "epoch": 3},  # a file torch wrote, but no weights file
        {"model": {}, "owner": collections.Counter(a=1)},  # a class no weights file holds
    ],
    ids=["garbage", "no-model", "foreign-class"],
)
def test_anything_else_is_one_error_naming_the_file(tmp_path, content):
    path = tmp_path / "weights.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ConfigError, match="is not a weights file") as raised:
        read_owner(path)
    assert str(path) in str(raised.value)
