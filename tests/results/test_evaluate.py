"""`hpsearch evaluate`: weights saved by `train`, scored again on the val split, and the files it
refuses."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch

import trainer.data
from search.cli import main
from search.results.evaluate import evaluate_weights
from tests.helpers.damaged_files import damage_a_tensor_in_place
from tests.helpers.images import make_image_folder

CLASSES = ["class_0", "class_1", "class_2"]
VAL_PER_CLASS = 12  # make_image_folder's default


class Trained(NamedTuple):
    root: Path
    summary: dict[str, Any]  # the JSON line `train --json` printed

    @property
    def weights(self) -> Path:
        return self.root / "run" / "weights.pt"


def run_cli(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """One short `hpsearch train` run that keeps its weights."""
    root = tmp_path_factory.mktemp("evaluate")
    images = make_image_folder(root / "images")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(
            [
                "train",
                "--data",
                str(images),
                "--cache-dir",
                str(root / "cache"),
                "--image-size",
                "32",
                "--epochs",
                "2",
                "--batch-size",
                "32",
                "--optimizer",
                "adam",
                "--lr",
                "0.003",
                "--device",
                "cpu",
                "--checkpoint-dir",
                str(root / "run"),
                "--json",
            ]
        )
    assert status == 0
    return Trained(root, json.loads(out.getvalue().strip().splitlines()[-1]))


def evaluate_args(
    trained: Trained, *flags, weights: Path | None = None, data: Path | None = None
) -> list:
    return [
        "evaluate",
        weights or trained.weights,
        "--data",
        data or trained.root / "images",
        "--cache-dir",
        trained.root / "cache",
        "--device",
        "cpu",
        *flags,
    ]


def test_evaluate_reproduces_the_val_top1_that_train_reported(trained, capsys):
    status, out, err = run_cli(capsys, *evaluate_args(trained, "--json"))
    assert status == 0, err
    assert len(out.strip().splitlines()) == 1
    result = json.loads(out)
    assert result["top1"] == pytest.approx(trained.summary["final_val_top1"], abs=1e-9)
    assert result["val_loss"] == pytest.approx(trained.summary["history"][-1]["val_loss"], rel=1e-5)
    assert result["classes"] == CLASSES and result["images"] == VAL_PER_CLASS * len(CLASSES)
    confusion = result["confusion"]
    assert [sum(row) for row in confusion] == [VAL_PER_CLASS] * len(CLASSES)
    assert sum(confusion[index][index] for index in range(3)) / result["images"] == pytest.approx(
        result["top1"]
    )
    assert result["per_class"] == {
        name: confusion[index][index] / VAL_PER_CLASS for index, name in enumerate(CLASSES)
    }
    # With 3 classes the top 3 always hold the right one
    assert result["top_k"] == 3 and result["top5"] == 1.0
    # Standard error is no terminal here, as in a log file: no bar redrawn with \r
    assert "\r" not in err and "evaluating" not in err


def test_the_progress_bar_shows_on_a_terminal(trained, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    status, _, err = run_cli(capsys, *evaluate_args(trained, "--json"))
    assert status == 0 and "evaluating" in err and "\r" in err


def test_the_human_summary_and_the_confusion_page(trained, tmp_path, capsys):
    page = tmp_path / "confusion.html"
    status, out, err = run_cli(capsys, *evaluate_args(trained, "-o", page))
    assert status == 0, err
    assert err.strip() == f"wrote {page}: the confusion matrix"  # where it went, and only that
    assert re.search(r"top-1 \d+\.\d\d%\s+top-3 100\.00%", out) and all(
        name in out for name in CLASSES
    )
    text = page.read_text()
    assert '"type":"heatmap"' in text and "Plotly.newPlot" in text
    assert not re.search(r"<script\b[^>]*\bsrc=", text)  # plotly.js inline: the page opens offline


def test_evaluate_weights_is_callable_from_python(trained):
    evaluation = evaluate_weights(
        trained.weights,
        trained.root / "images",
        cache_dir=trained.root / "cache",
        device="cpu",
        progress=False,
    )
    assert evaluation.image_size == 32 and evaluation.top1 == pytest.approx(
        trained.summary["final_val_top1"]
    )


def test_weights_for_other_classes_are_refused_naming_both(trained, tmp_path, capsys):
    other = make_image_folder(
        tmp_path / "four", classes=4, train_per_class=2, val_per_class=2, odd_formats=False
    )
    status, _, err = run_cli(capsys, *evaluate_args(trained, data=other))
    err = err.strip().splitlines()[-1]  # after the new folder's decoding progress bar
    assert status == 2 and err.startswith("hpsearch: error: ")
    assert "trained on 3 classes (class_0, class_1, class_2)" in err
    assert "has 4 classes (class_0, class_1, class_2, class_3)" in err


def test_weights_of_a_network_torchvision_cannot_build_are_refused(trained, tmp_path, capsys):
    payload = torch.load(trained.weights, weights_only=True)
    path = tmp_path / "resnet9.pt"
    torch.save({**payload, "architecture": "resnet9"}, path)
    status, _, err = run_cli(capsys, *evaluate_args(trained, weights=path))
    assert status == 2 and (
        f"{path} holds a network this torchvision cannot build: unknown model 'resnet9'" in err
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda path: path.write_text("not weights"),
            "is not a weights file: torch cannot read it",
        ),
        (
            lambda path: torch.save(torch.zeros(3), path),
            "is not a weights file saved by `hpsearch train`",
        ),
        (lambda path: None, "does not exist"),
    ],
)
def test_a_file_that_is_not_a_weights_file_is_a_clear_error(
    trained, tmp_path, capsys, make, message
):
    path = tmp_path / "weights.pt"
    make(path)
    status, _, err = run_cli(capsys, *evaluate_args(trained, weights=path))
    assert (
        status == 2
        and message in err
        and "Traceback" not in err
        and len(err.strip().splitlines()) == 1
    )


def test_weights_cut_short_are_said_to_be_in_torch_s_words_cut_at_a_word(trained, tmp_path, capsys):
    path = tmp_path / "weights.pt"
    saved = trained.weights.read_bytes()
    path.write_bytes(saved[: len(saved) // 2])  # a copy that failed half way
    status, _, err = run_cli(capsys, *evaluate_args(trained, weights=path))
    said = re.search(r"it looks cut short or damaged \(torch: (.*)\); copy it again", err)
    assert status == 2 and said is not None, err
    with pytest.raises(RuntimeError) as torch_said:
        torch.load(path, weights_only=True)
    whole, shown = " ".join(str(torch_said.value).split()), said.group(1)
    # torch's 337 characters, cut at a word's end (it had "...miniz error. If yo")
    cut_at_a_word = (whole + " ").startswith(shown.removesuffix(" ...") + " ")
    assert shown == whole or (shown.endswith(" ...") and cut_at_a_word), shown


def test_weights_damaged_in_place_are_refused_not_scored(trained, tmp_path, capsys):
    # torch.load read them without a word, and evaluate scored the damaged model
    path = tmp_path / "weights.pt"
    path.write_bytes(trained.weights.read_bytes())
    damage_a_tensor_in_place(path)
    status, out, err = run_cli(capsys, *evaluate_args(trained, weights=path))
    assert status == 2 and out == "", out
    assert f"{path} cannot be used: its record " in err and "fails its checksum" in err, err


def test_a_training_checkpoint_points_at_the_weights_beside_it(trained, capsys):
    status, _, err = run_cli(
        capsys, *evaluate_args(trained, weights=trained.root / "run" / "last.pt")
    )
    assert status == 2 and "training checkpoint; use the weights.pt beside it" in err


def test_imagenette_classes_are_named_as_people_say_them(tmp_path, capsys):
    """Folders named by WordNet id, as in Imagenette, read as tench and English springer in the
    summary, the JSON and the confusion matrix; a folder of another name keeps its own."""
    folders = ["n01440764", "n02102040", "other_folder"]
    images = make_image_folder(
        tmp_path / "images", train_per_class=8, val_per_class=4, odd_formats=False, names=folders
    )
    common = ["--cache-dir", tmp_path / "cache", "--device", "cpu"]
    status, _, err = run_cli(
        capsys,
        *["train", "--data", images, "--image-size", "32", "--epochs", "1", *common],
        *["--batch-size", "8", "--checkpoint-dir", tmp_path / "run"],
    )
    assert status == 0, err
    weights, page = tmp_path / "run" / "weights.pt", tmp_path / "confusion.html"
    evaluate = ["evaluate", weights, "--data", images, *common]
    status, out, err = run_cli(capsys, *evaluate, "-o", page)
    assert status == 0, err
    per_class = out[out.index("per class:") :].splitlines()[1:]
    assert [line.split("  ")[1] for line in per_class] == [
        "tench (n01440764)",
        "English springer (n02102040)",
        "other_folder",
    ]
    heatmap = re.search(r'"x":\[([^\]]*)\]', page.read_text()).group(1)
    assert heatmap == '"tench","English springer","other_folder"'
    status, out, err = run_cli(capsys, *evaluate, "--json")
    result = json.loads(out)
    assert result["classes"] == folders and set(result["per_class"]) == set(folders)
    assert result["class_names"] == ["tench", "English springer", "other_folder"]


# --- val/ alone: what evaluate reads of a folder not kept whole ---------------------------------


def evaluate_json(trained: Trained, capsys, data: Path, cache_dir: Path) -> dict[str, Any]:
    args = ["evaluate", trained.weights, "--data", data, "--cache-dir", cache_dir]
    status, out, err = run_cli(capsys, *args, "--device", "cpu", "--json")
    assert status == 0, err
    return json.loads(out)


def same_scores(result: dict[str, Any], whole: dict[str, Any]) -> bool:
    """The same scores as on the whole folder, kept in its cache: decoded alike, scored alike."""
    return {**result, "data": whole["data"]} == whole


@pytest.fixture
def decoded(monkeypatch) -> list[Path]:
    """Every image file decoded while the test runs, in order."""
    paths: list[Path] = []
    original = trainer.data.decode_all

    def recording(files: list[Path], side: int, progress: bool) -> torch.Tensor:
        paths.extend(files)
        return original(files, side, progress)

    monkeypatch.setattr(trainer.data, "decode_all", recording)
    return paths


def test_a_folder_with_only_val_is_scored_as_the_whole_one(trained, tmp_path, capsys, decoded):
    own = tmp_path / "own"
    shutil.copytree(trained.root / "images" / "val", own / "val")
    whole = evaluate_json(trained, capsys, trained.root / "images", trained.root / "cache")
    assert decoded == []  # the whole folder was cached by `train`: nothing decoded again
    result = evaluate_json(trained, capsys, own, tmp_path / "cache")
    assert result["data"] == str(own) and result["images"] == VAL_PER_CLASS * len(CLASSES)
    assert same_scores(result, whole)
    assert len(decoded) == result["images"] and not (tmp_path / "cache").exists()


def test_a_corrupt_image_in_train_does_not_stop_evaluate(trained, tmp_path, capsys):
    images = shutil.copytree(trained.root / "images", tmp_path / "images")
    (images / "train" / "class_0" / "broken.jpg").write_bytes(b"not an image")
    result = evaluate_json(trained, capsys, images, tmp_path / "cache")
    whole = evaluate_json(trained, capsys, trained.root / "images", trained.root / "cache")
    assert same_scores(result, whole)


def test_uncached_data_decodes_val_alone_and_leaves_the_cache_as_it_was(
    trained, tmp_path, capsys, decoded, monkeypatch
):
    images = shutil.copytree(trained.root / "images", tmp_path / "images")
    cache_dir = tmp_path / "cache"
    trainer.data.load_image_data(images, 32, cache_dir=cache_dir, progress=False)
    monkeypatch.setattr(trainer.data, "_LOADED", {})  # as in a new process: the cache file alone
    kept = {path.name: path.stat().st_mtime_ns for path in cache_dir.iterdir()}
    decoded.clear()
    whole = evaluate_json(trained, capsys, images, cache_dir)
    assert decoded == []  # read from the cache made above
    # One more training image: the cache no longer matches the folder, and evaluate needs no new one
    shutil.copy(
        images / "train" / "class_1" / "img_0000.JPEG", images / "train" / "class_1" / "new.jpg"
    )
    result = evaluate_json(trained, capsys, images, cache_dir)
    assert same_scores(result, whole)
    assert len(decoded) == result["images"] and all(
        path.parent.parent.name == "val" for path in decoded
    )
    assert {path.name: path.stat().st_mtime_ns for path in cache_dir.iterdir()} == kept


def make_own_folder(root: Path, layout: str) -> None:
    """A user's own test folder: val/ with one class or none, or train/ without val/."""
    make_image_folder(root, classes=2, train_per_class=1, val_per_class=1, odd_formats=False)
    if layout == "no val":
        shutil.rmtree(root / "val")
        return
    shutil.rmtree(root / "train")
    for name in {"one class": ["class_1"], "no class": ["class_0", "class_1"]}[layout]:
        shutil.rmtree(root / "val" / name)


@pytest.mark.parametrize(
    "layout, message",
    [
        ("one class", "holds one class (class_0), but classification needs at least 2"),
        ("no class", "/val holds no class folders; expected"),
        ("no val", "has no val/ folder; expected val/<class>/<image files> in it"),
    ],
    ids=["one class", "no class", "no val"],
)
def test_a_val_folder_that_cannot_be_scored_is_a_clear_error(
    trained, tmp_path, capsys, layout, message
):
    own = tmp_path / "own"
    make_own_folder(own, layout)
    status, _, err = run_cli(capsys, *evaluate_args(trained, data=own))
    assert status == 2 and err.startswith(f"hpsearch: error: {own}") and message in err
    assert "train/" not in err  # which a folder to score needs none of
