"""Safe defaults: folders named after studies stay in their root; checkpoints cannot run code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import optuna
import pytest
import torch

from search.cli import main
from search.run.paths import safe_child, slug
from search.study.recorded import study_id
from tests.helpers.studies import write_study
from trainer import checkpoint

NAME = "test-study"


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


def test_a_study_folder_linked_to_another_disk_stops_the_worker_with_one_line(
    tmp_path, image_folder, cache_dir, capsys
):
    # A user who moved a study's checkpoints to a larger disk and linked them back: refused, as
    # one line, before any trial starts (it was a ValueError's traceback)
    path = write_study(tmp_path, image_folder, trials=1, epochs=1)
    flags = ["--storage", f"sqlite:///{tmp_path / 's.db'}", "--device", "cpu"]
    assert main(["run", str(path), *flags, "--create-only"]) == 0
    root, disk = tmp_path / "checkpoints", tmp_path / "larger-disk"
    root.mkdir()
    disk.mkdir()
    study = optuna.load_study(study_name=NAME, storage=flags[1])
    (root / f"{NAME}-{study_id(study)[:8]}").symlink_to(disk, target_is_directory=True)
    capsys.readouterr()
    flags += ["--cache-dir", str(cache_dir), "--checkpoint-dir", str(root), "--no-progress"]
    assert main(["run", str(path), *flags]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"hpsearch: error: folder {root}/{NAME}-") and f"link to {disk}" in last
    assert not study.trials, "no trial started"


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
