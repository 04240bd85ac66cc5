"""Python's own warnings (warnings.warn, as the trainer warns of an image or a cache it rebuilds),
and what the trainer's logger says, in a JSON log are records like its other lines, never a plain
line that breaks a log collector;
in a text log, and once a later log of another format is asked for, they stay one plain line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap

import pytest

from search.cli import main
from tests.helpers.studies import write_study

# A command's process as `hpsearch` sets it up, then a worker's log of each format in turn
WARNS = textwrap.dedent(
    """
    import sys, warnings
    from search.run.log import log_warnings, one_line_warnings
    one_line_warnings()
    for log_format in sys.argv[1:]:
        log_warnings(None if log_format == "none" else log_format)
        warnings.warn(f"image x.png: truncated ({log_format})")
    """
)


def warned(*formats: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", WARNS, *formats],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "always"},
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_a_warning_in_a_json_log_is_a_record():
    [line] = warned("json")
    record = json.loads(line)
    assert (record["event"], record["logger"], record["category"]) == (
        "warning",
        "py.warnings",
        "UserWarning",
    )
    assert record["message"] == "image x.png: truncated (json)" and record["time"]


@pytest.mark.parametrize("other", ["text", "none"])
def test_a_log_of_another_format_shows_it_as_one_line_again(other):
    first, second = warned("json", "json", other)[1:]
    assert json.loads(first)["message"] == "image x.png: truncated (json)"
    assert second == f"hpsearch: warning: image x.png: truncated ({other})"


def test_a_worker_warning_of_a_damaged_image_cache_keeps_its_json_log_parsing(
    tmp_path, image_folder, cache_dir, one_torch_thread
):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    path = write_study(tmp_path, image_folder, trials=1, epochs=1)
    create = ["run", str(path), "--storage", url, "--create-only", "--device", "cpu"]
    assert main([*create, "--cache-dir", str(cache_dir)]) == 0
    [cache] = cache_dir.glob("*.pt")  # built when the study was created
    cache.write_bytes(b"not a torch file")
    worker = ["worker", "--study", "test-study", "--storage", url, "--device", "cpu"]
    done = subprocess.run(
        [sys.executable, "-m", "search", *worker, "--cache-dir", str(cache_dir)]
        + ["--log-format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    [warning] = [record for record in records if record["event"] == "warning"]
    assert warning["message"].startswith(f"image cache {cache} could not be read")
    assert records[-1]["event"] == "worker_ended"


def test_an_archive_extracted_for_a_json_log_s_search_is_said_in_a_record(
    tmp_path, image_folder, cache_dir, capsys, one_torch_thread
):
    """The first run on a .tar.gz says where it extracted it, for the disk that takes: in a JSON
    log as a record, where a printed line broke the log (every line must parse)."""
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(image_folder, arcname="images")
    path = write_study(tmp_path, archive, trials=1, epochs=1, image_size=16)
    run = ["run", str(path), "--storage", f"sqlite:///{tmp_path / 'studies.db'}"]
    assert (
        main([*run, "--device", "cpu", "--cache-dir", str(cache_dir), "--log-format", "json"]) == 0
    )
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    [said] = [record for record in records if record.get("logger") == "trainer.sources"]
    assert said["event"] == "warning" and said["message"].startswith(f"extracted {archive} into")
