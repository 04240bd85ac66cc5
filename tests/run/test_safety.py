"""Safe defaults: folders named after studies stay in their root; checkpoints cannot run code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from search.run.paths import safe_child, slug
from trainer import checkpoint


@pytest.mark.parametrize(
    "name",
    [
        "../escape",
        "../../etc/passwd",
        "a/../../b",
        "/absolute/path",
        "..\\windows",
        "study name with spaces",
        "étude",
        "../..",
    ],
)
def test_a_study_name_cannot_leave_its_folder(tmp_path, name):
    root = tmp_path / "checkpoints"
    child = safe_child(root, name)
    assert child.parent == root.resolve()
    assert "/" not in child.name and child.name not in (".", "..")


def test_a_plain_name_keeps_its_folder_name_and_different_names_get_different_folders(tmp_path):
    assert safe_child(tmp_path, "imagenette-lr_0.1").name == "imagenette-lr_0.1"
    assert slug("a b") != slug("a_b") and slug("a/b") != slug("a_b")


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_names_that_make_no_folder_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="makes no folder name"):
        safe_child(tmp_path, name)


def test_a_symlink_planted_in_the_root_is_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "study").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside"):
        safe_child(root, "study")


class RunsCode:
    """Unpickling this makes the folder `marker`: a stand-in for a checkpoint that carries a
    payload."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_checkpoint_with_code_in_it_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "last.pt"
    torch.save({"model": {"weight": torch.zeros(2)}, "extra": RunsCode(marker)}, path)
    with pytest.raises(pickle.UnpicklingError):
        checkpoint.load(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the same file, loaded unsafely, does run its payload
    assert marker.exists()
