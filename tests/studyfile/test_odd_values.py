"""Values TOML reads but no later step can use: an integer past any float, a NUL in a path, a blank
folder, an unprintable character in a storage URL, a byte-order mark before the first table. Each
is refused with its file and key named, or (the mark) read as the editor showed it; and the same
for the settings files `train --config` reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.studyfile import StudyFileError, load_study_config
from search.studyfile.train_file import read_settings
from trainer.errors import ConfigError

# TOML's integers have no bound: one past the largest float, which every float setting overflows
HUGE = "1" + "0" * 400

STUDY = """[study]
name = "odd"
trials = 3

[data]
source = "images"
image_size = 32
batch_size = 8

[train]
epochs = 2

[space]
optimizer = ["sgd", "adam"]
lr = { low = 1e-3, high = 0.1 }
eps = { low = 1e-8, high = 1e-6 }
momentum = { low = 0.0, high = 0.9 }
"""

# A line of STUDY changed, or a table added: name -> (line, replacement, the key the error names)
HUGE_FLOATS = {
    "a range's bound": ("lr = { low = 1e-3, high = 0.1 }", f"lr = {{ low = 1e-3, high = {HUGE} }}"),
    "a fixed value": ("lr = { low = 1e-3, high = 0.1 }", f"lr = {HUGE}"),
    "a negative one": ("epochs = 2", f"epochs = 2\nweight_decay = -{HUGE}"),
    "a [train] setting": ("epochs = 2", f"epochs = 2\nwarmup_epochs = {HUGE}"),
    "a warm-start point": ("", f'[[warm_start]]\noptimizer = "sgd"\nlr = {HUGE}'),
    "a checkpoint interval": ("", f"[checkpoint]\nevery_seconds = {HUGE}"),
}
HUGE_KEYS = {
    "a range's bound": "space.lr.high",
    "a fixed value": "space.lr",
    "a negative one": "train.weight_decay",
    "a [train] setting": "train.warmup_epochs",
    "a warm-start point": "warm_start[0].lr",
    "a checkpoint interval": "checkpoint.every_seconds",
}


def _study_file(tmp_path: Path, line: str, replacement: str) -> Path:
    path = tmp_path / "study.toml"
    if line:
        assert line in STUDY, line
        path.write_text(STUDY.replace(line, replacement), encoding="utf-8")
    else:
        path.write_text(f"{STUDY}\n{replacement}\n", encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(StudyFileError) as caught:
        load_study_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return message


@pytest.mark.parametrize("case", HUGE_FLOATS)
def test_an_integer_past_any_float_is_named_not_overflowed(case, tmp_path):
    path = _study_file(tmp_path, *HUGE_FLOATS[case])
    assert f"{HUGE_KEYS[case]} must be a finite number, but got an integer of 401 digits" in _error(
        path
    )


def test_the_largest_integer_a_float_holds_is_judged_as_a_number(tmp_path):
    # 10**308 is a float still: the trainer's own bound refuses it, not the overflow check
    path = _study_file(tmp_path, "lr = { low = 1e-3, high = 0.1 }", f"lr = 1{'0' * 308}")
    assert "space.lr: lr must be at most" in _error(path)


@pytest.mark.parametrize(
    "line, replacement, expected",
    [
        ('source = "images"', 'source = "ima\\u0000ges"', "data.source holds a NUL character"),
        ("", '[checkpoint]\ndir = "/shared/\\u0000"', "checkpoint.dir holds a NUL character"),
        ("", '[checkpoint]\ndir = ""', "checkpoint.dir must name a folder, but got an empty"),
        ("", '[checkpoint]\ndir = "   "', "checkpoint.dir must name a folder, but got an empty"),
        (
            "trials = 3",
            'trials = 3\nstorage = "sqlite:////tmp/a\\u0000.db"',
            "study.storage must be a database URL of printable characters (escape others as %XX), "
            "but it holds the unprintable character '\\x00'",
        ),
        (
            "trials = 3",
            'trials = 3\nstorage = "postgresql+psycopg://u@host/db\\u0085"',
            "but it holds the unprintable character '\\x85'",
        ),
    ],
)
def test_a_path_or_url_no_file_system_or_driver_takes_is_named(
    tmp_path, line, replacement, expected
):
    assert expected in _error(_study_file(tmp_path, line, replacement))


def test_a_study_file_that_starts_with_a_byte_order_mark_reads_as_without(tmp_path):
    plain = tmp_path / "plain.toml"
    plain.write_text(STUDY, encoding="utf-8")
    marked = tmp_path / "marked.toml"
    marked.write_text(STUDY, encoding="utf-8-sig")  # as Windows Notepad saves it
    assert marked.read_bytes().startswith(b"\xef\xbb\xbf")
    assert load_study_config(marked).study == load_study_config(plain).study


@pytest.mark.parametrize("suffix", ["toml", "json", "yaml"])
def test_a_settings_file_with_a_byte_order_mark_reads_as_without(tmp_path, suffix):
    text = {"toml": "lr = 0.1\n", "json": '{"lr": 0.1}\n', "yaml": "lr: 0.1\n"}[suffix]
    path = tmp_path / f"best.{suffix}"
    path.write_text(text, encoding="utf-8-sig")
    assert read_settings(path) == ({"lr": 0.1}, {})


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda path: path.mkdir(), "is a folder; name the .toml, .json or .yaml in it"),
        (lambda path: path.write_text(""), "is empty; it must hold a table of settings"),
        (lambda path: path.write_text("# nothing set yet\n"), "is empty"),
    ],
)
def test_a_settings_file_that_holds_no_settings_says_what_it_is(tmp_path, make, expected):
    path = tmp_path / "best.yaml"
    make(path)
    with pytest.raises(ConfigError) as caught:
        read_settings(path)
    assert f"{path} {expected}" in str(caught.value)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("data = 5", "data must be a string, but got 5 (an integer)"),
        ("cache_dir = 5", "cache_dir must be a string, but got 5 (an integer)"),
        ('checkpoint_dir = ""', "checkpoint_dir is an empty string; name a folder, or leave it"),
        ('cache_dir = "/cache/\\u0000"', "cache_dir holds a NUL character"),
        ('compile = "yes"', "compile must be true or false, but got 'yes' (a string)"),
        (
            'checkpoint_every_seconds = "5"',
            "checkpoint_every_seconds must be a number, but got '5'",
        ),
        ("checkpoint_every = 1.5", "checkpoint_every must be an integer, but got 1.5 (a number)"),
    ],
)
def test_a_run_setting_of_a_settings_file_is_checked_as_read(tmp_path, line, expected):
    """The settings besides TrainConfig's (where data, device and files are) reach the trainer as
    a file gives them: a wrong type once failed there in a traceback."""
    path = tmp_path / "best.toml"
    path.write_text(f'{line}\nlr = 0.1\ndevice = "cpu"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_settings(path)
    assert f"{path}: {expected}" in str(caught.value)


def test_a_run_setting_left_unset_as_json_writes_it_is_unset(tmp_path):
    path = tmp_path / "best.json"
    path.write_text('{"lr": 0.1, "cache_dir": null, "compile": false, "data": "images"}\n')
    assert read_settings(path)[0] == {
        "lr": 0.1,
        "cache_dir": None,
        "compile": False,
        "data": "images",
    }
