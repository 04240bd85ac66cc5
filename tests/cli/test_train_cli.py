"""`hpsearch train` from the command line: the JSON line, settings files, and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from search.cli import build_parser, main
from search.cli.training.train import resolve_settings
from tests.helpers.studies import write_study

QUICK = ["--image-size", "32", "--epochs", "1", "--batch-size", "16", "--device", "cpu"]


def run_cli(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.xdist_group("torch-compile")  # under -n: one worker, one Inductor compile at a time
def test_json_line_parses_and_holds_the_resolved_config(capsys, image_folder, cache_dir, tmp_path):
    status, out, err = run_cli(
        capsys,
        "train",
        "--data",
        image_folder,
        "--cache-dir",
        cache_dir,
        *QUICK,
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--momentum",
        "0.9",
        "--checkpoint-dir",
        tmp_path / "run",
        "--json",
    )
    assert status == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert {
        "best_val_top1",
        "final_val_top1",
        "epochs",
        "seconds",
        "images_per_second",
        "config",
    } <= set(summary)
    assert summary["config"]["optimizer"] == "sgd" and summary["config"]["momentum"] == 0.9
    assert summary["epochs"] == 1 and 0 <= summary["best_val_top1"] <= 1
    assert "epoch 1/1" in err and "val top-1" in err
    weights = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    assert weights["architecture"] == "resnet18" and weights["classes"] == [
        "class_0",
        "class_1",
        "class_2",
    ]


def test_flags_override_the_settings_file_and_provenance_is_kept(
    capsys, image_folder, cache_dir, tmp_path
):
    settings = tmp_path / "best.toml"
    settings.write_text(
        'optimizer = "adam"\nlr = 0.001\neps = 1e-7\nepochs = 3\nimage_size = 32\n'
        '[provenance]\nstudy = "demo"\ntrial = 4\n'
    )
    status, out, err = run_cli(
        capsys,
        "train",
        "--config",
        settings,
        "--data",
        image_folder,
        "--cache-dir",
        cache_dir,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--json",
    )
    assert status == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["config"]["eps"] == 1e-7 and summary["config"]["epochs"] == 1
    assert summary["provenance"] == {"study": "demo", "trial": 4}


def _train_into(folder, image_folder, cache_dir) -> list:
    """`train` of a small run with its checkpoints in `folder`, a JSON summary last."""
    return [
        "train", "--data", image_folder, "--cache-dir", cache_dir, "--image-size", "32",
        "--batch-size", "16", "--device", "cpu", "--optimizer", "adam", "--lr", "0.001",
        "--checkpoint-dir", folder, "--json",
    ]  # fmt: skip


def test_resume_continues_a_checkpointed_run(capsys, image_folder, cache_dir, tmp_path):
    common = _train_into(tmp_path / "run", image_folder, cache_dir)
    assert run_cli(capsys, *common, "--epochs", "1")[0] == 0
    status, out, err = run_cli(capsys, *common, "--epochs", "1", "--resume")
    summary = json.loads(out.strip().splitlines()[-1])
    assert status == 0 and summary["resumed_from_epoch"] == 1 and summary["epochs"] == 1

    # Without --resume, the same folder would have the run's checkpoint and weights written over
    saved = {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir()}
    status, out, err = run_cli(capsys, *common, "--epochs", "2")
    assert status == 2 and not out
    assert err.strip() == (
        f"hpsearch: error: --checkpoint-dir {tmp_path / 'run'} holds an earlier run's last.pt and "
        "weights.pt: add --resume to continue that run, or name another folder (left out, each "
        "run gets a new runs/train-DATE-TIME)"
    )
    assert {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir()} == saved


def test_resume_from_a_folder_without_a_checkpoint_says_it_trains_from_epoch_1(
    capsys, caplog, image_folder, cache_dir, tmp_path
):
    # A mistyped --checkpoint-dir trained from scratch without a word: the user waited for a
    # resumed run's end
    typo = tmp_path / "rnu"
    argv = [*_train_into(typo, image_folder, cache_dir), "--epochs", "1", "--resume"]
    status, out, _ = run_cli(capsys, *argv)
    assert status == 0 and json.loads(out.strip().splitlines()[-1])["resumed_from_epoch"] is None
    said = f"--resume: no checkpoint at {typo / 'last.pt'} (a first run, or a mistyped "
    assert said + "--checkpoint-dir?): training from epoch 1" in caplog.text


def test_resuming_from_another_run_is_refused_before_decoding(
    capsys, image_folder, cache_dir, tmp_path
):
    """A real checkpoint, resumed with another model or on other classes: refused with what
    differs, before the other data is decoded and before the checkpoint is touched."""
    run = ["--checkpoint-dir", tmp_path / "run", "--image-size", "16", "--batch-size", "8"]
    common = ["train", "--cache-dir", cache_dir, "--device", "cpu", "--epochs", "1", *run]
    assert run_cli(capsys, *common, "--data", image_folder)[0] == 0
    checkpoint = (tmp_path / "run" / "last.pt").read_bytes()

    status, _, err = run_cli(
        capsys, *common, "--data", image_folder, "--model", "resnet34", "--resume"
    )
    assert status == 2 and "model='resnet18', not 'resnet34'" in err

    shutil.rmtree(image_folder / "train" / "class_2")
    shutil.rmtree(image_folder / "val" / "class_2")
    cached = sorted(cache_dir.iterdir())
    status, _, err = run_cli(capsys, *common, "--data", image_folder, "--resume")
    assert status == 2 and "trained on 3 classes (class_0, class_1, class_2)" in err
    assert "the data holds 2 classes (class_0, class_1)" in err and len(err.splitlines()) == 1
    assert sorted(cache_dir.iterdir()) == cached
    assert (tmp_path / "run" / "last.pt").read_bytes() == checkpoint


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--optimizer", "lion"], "unknown optimizer 'lion'; choose one of: sgd, adam"),
        (["--optimizer", "sgd", "--eps", "1e-6"], "eps=1e-06 does not apply to optimizer 'sgd'"),
        (
            ["--optimizer", "adam", "--momentum", "0.9"],
            "momentum=0.9 does not apply to optimizer 'adam'; it applies only to: sgd",
        ),
        (["--lr", "0"], "lr must be positive, but got lr=0"),
        (["--lr", "-0.1"], "lr must be positive"),
        (["--epochs", "0"], "epochs must be positive, but got epochs=0"),
        (["--batch-size", "-4"], "batch_size must be at least 2 images, but got batch_size=-4"),
        (["--schedule", "step"], "unknown schedule 'step'"),
        (["--resume"], "--resume needs --checkpoint-dir"),
    ],
)
def test_bad_settings_are_one_line_with_status_2(capsys, image_folder, cache_dir, flags, message):
    status, out, err = run_cli(
        capsys,
        "train",
        "--data",
        image_folder,
        "--cache-dir",
        cache_dir,
        "--image-size",
        "32",
        "--device",
        "cpu",
        *flags,
    )
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_cuda_without_cuda_is_one_line(capsys, image_folder, cache_dir):
    status, out, err = run_cli(
        capsys, "train", "--data", image_folder, "--cache-dir", cache_dir, "--device", "cuda"
    )
    assert status == 2 and "no usable CUDA GPU" in err and "--device cpu" in err


def test_bad_data_folders_are_one_line_with_status_2(capsys, image_folder, cache_dir, tmp_path):
    missing = run_cli(
        capsys, "train", "--data", tmp_path / "nowhere", "--cache-dir", cache_dir, *QUICK
    )
    assert missing[0] == 2 and "nowhere" in missing[2]

    shutil.rmtree(image_folder / "val" / "class_2")
    mismatched = run_cli(capsys, "train", "--data", image_folder, "--cache-dir", cache_dir, *QUICK)
    assert mismatched[0] == 2 and "class_2" in mismatched[2]

    (image_folder / "val" / "class_2").mkdir()
    empty = run_cli(capsys, "train", "--data", image_folder, "--cache-dir", cache_dir, *QUICK)
    assert empty[0] == 2 and "class_2" in empty[2] and len(empty[2].strip().splitlines()) == 1


def test_the_console_script_runs_as_a_subprocess(image_folder, cache_dir):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "search",
            "train",
            "--data",
            str(image_folder),
            "--cache-dir",
            str(cache_dir),
            "--optimizer",
            "rmsprop",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "unknown optimizer 'rmsprop'" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_warning_is_one_line_as_an_error_is(image_folder, cache_dir, tmp_path):
    """A cache found damaged is rebuilt with a warning: Python's own format wrote it as the file
    and line that warned (`search/api/training.py:116: UserWarning: ...`) and that line of code."""
    from trainer.data import load_image_data

    load_image_data(image_folder, 32, cache_dir=cache_dir, progress=False)
    [cache_file] = cache_dir.glob("*.pt")
    cache_file.write_bytes(b"not a torch file")
    result = subprocess.run(
        [sys.executable, "-m", "search", "train", "--data", str(image_folder)]
        + ["--cache-dir", str(cache_dir), "--checkpoint-dir", str(tmp_path / "run"), *QUICK],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    [warning] = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert warning.startswith("hpsearch: warning: ") and "rebuilding" in warning
    assert "UserWarning" not in result.stderr and "warnings.warn" not in result.stderr


def test_a_time_interval_alone_replaces_the_per_epoch_checkpoint(tmp_path):
    from search.api.training import checkpoint_policy

    by_time = checkpoint_policy({"checkpoint_dir": tmp_path, "checkpoint_every_seconds": 60.0})
    assert (by_time.every_epochs, by_time.every_seconds) == (None, 60.0)
    both = checkpoint_policy(
        {"checkpoint_dir": tmp_path, "checkpoint_every_seconds": 60.0, "checkpoint_every": 2}
    )
    assert (both.every_epochs, both.every_seconds) == (2, 60.0)
    assert checkpoint_policy({"checkpoint_dir": tmp_path}).every_epochs == 1


def test_runs_started_in_one_second_each_get_a_folder_of_their_own(monkeypatch):
    # The folder was made at the first checkpoint: both had taken one name by then, and one run's
    # weights replaced the other's, each run's JSON naming the same file
    import time

    from search.api.training import checkpoint_policy

    monkeypatch.setattr(time, "strftime", lambda _format: "20261207-080924")
    first, second = (checkpoint_policy({}).folder for _ in range(2))
    assert first != second and first.is_dir() and second.is_dir()
    assert (first.name, second.name) == ("train-20261207-080924", "train-20261207-080924-1")


@pytest.mark.parametrize("flags, compiled", [(["--compile"], True), ([], None)])
def test_train_compile_reaches_the_run_settings(flags, compiled):
    # Compiling itself is tested in tests/trainer (once per process, as eager) and through `run`
    args = build_parser().parse_args(["train", "--epochs", "1", *flags])
    _, run, _ = resolve_settings(args)
    assert run.get("compile") == compiled


def test_a_log_gets_the_epoch_lines_without_progress_bars(capsys, image_folder, cache_dir):
    """Standard error not a terminal (a log file, a SLURM job): a bar redrawn with \\r is noise."""
    status, out, err = run_cli(
        capsys, "train", "--data", image_folder, "--cache-dir", cache_dir, *QUICK
    )
    assert status == 0 and "epoch 1/1" in out, out + err
    assert "\r" not in out + err


def test_a_study_file_given_to_train_is_named_as_one(capsys, image_folder, tmp_path):
    """The study file beside `train --config`'s settings file in every folder of the project: it
    read as settings, its [data] table a setting of the wrong type."""
    study = write_study(tmp_path, image_folder)
    status, out, err = run_cli(capsys, "train", "--config", study)
    assert status == 2 and not out
    assert err.strip() == (
        f"hpsearch: error: {study} is a study file (it has a [study] table), not a settings "
        "file: to retrain a study's best trial, `hpsearch export` one from the study; to "
        f"search, `hpsearch run {study}`"
    )
