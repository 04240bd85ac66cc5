"""A file a results command writes over an earlier one is replaced whole or not at all: a write cut
short (a disk that fills, or a limit on the size of the files this process writes) leaves the
earlier report, table, settings file, confusion matrix or dashboard copy as it was, and says so
in one line, where it left a truncated file and a traceback."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest

from search.errors import ConfigError
from search.results import output_file
from search.results.confusion import write_confusion_page
from search.results.evaluation import Evaluation
from search.serve.artifacts import REPORT_SUFFIX
from search.serve.notes import attach_report
from tests.helpers.cli import run_cli
from tests.helpers.made_trials import made_study


@contextmanager
def files_limited_to(size_bytes: int) -> Iterator[None]:
    """Files this process writes stop growing at `size_bytes`: a write past it fails with EFBIG
    (File too large), as one on a full disk fails with ENOSPC. SIGXFSZ, which would kill the
    process first, is ignored meanwhile."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.fixture
def study_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'made.db'}"
    made_study(url, "made", 6)
    return url


def assert_kept(path: Path, earlier: bytes, err: str) -> None:
    assert "Traceback" not in err
    [line] = err.strip().splitlines()[-1:]
    assert line.startswith("hpsearch: error: -o ") and str(path) in line, line
    assert line.endswith("the earlier file is kept"), line
    assert path.read_bytes() == earlier
    assert [other.name for other in path.parent.iterdir() if other.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("report --study made -o {path}", "report.html"),
        ("trials --study made -o {path}", "trials.csv"),
        ("export --study made -o {path}", "best.json"),
    ],
)
def test_a_write_on_a_full_disk_keeps_the_earlier_file(
    study_url, tmp_path, capsys, small_disks, command, name
):
    # The output's folder on a disk that fills (the storage elsewhere: it writes a note, and its
    # -shm file, which a size limit on every file of the process refused)
    out = small_disks.mount(tmp_path / "out", "16m")
    path = out / name
    argv = [*command.format(path=path).split(), "--storage", study_url]
    status, _, err = run_cli(capsys, *argv)
    assert status == 0, err
    path.chmod(0o640)  # shared with the group, say: the new file keeps that
    earlier = path.read_bytes()
    filler = out / "filler"
    with filler.open("wb", buffering=0) as file, contextlib.suppress(OSError):
        while file.write(b"\0" * 4096):  # until no free block is left
            pass

    status, out_text, err = run_cli(capsys, *argv)

    assert status == 2, out_text + err
    assert_kept(path, earlier, err)
    filler.unlink()
    status, _, err = run_cli(capsys, *argv)  # with room again
    assert status == 0, err
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_confusion_matrix_cut_short_keeps_the_earlier_page(tmp_path):
    classes = ("0", "1", "10", "2")
    diagonal = tuple(tuple(5 if row == column else 0 for column in range(4)) for row in range(4))
    evaluation = Evaluation(
        "weights.pt", "resnet18", "data", classes, classes, 32, 20, 1.0, 4, 1.0, 0.1,
        dict.fromkeys(classes, 1.0), diagonal,
    )  # fmt: skip
    path = tmp_path / "confusion.html"
    write_confusion_page(evaluation, path)
    earlier = path.read_bytes()

    with files_limited_to(len(earlier) // 2), pytest.raises(ConfigError) as refused:
        write_confusion_page(evaluation, path)

    assert_kept(path, earlier, f"hpsearch: error: {refused.value}")


def test_a_report_copy_for_the_dashboard_cut_short_keeps_the_earlier_copy(study_url, tmp_path):
    study = optuna.load_study(study_name="made", storage=study_url)
    page, folder = tmp_path / "report.html", tmp_path / "artifacts"
    page.write_text("<p>" + "first " * 20_000 + "</p>")
    artifact_id = attach_report(study, page, folder)
    served = folder / f"{artifact_id}{REPORT_SUFFIX}"
    earlier = served.read_bytes()
    page.write_text("<p>" + "second " * 20_000 + "</p>")

    with files_limited_to(len(earlier) // 2), pytest.raises(OSError):
        attach_report(study, page, folder)

    assert served.read_bytes() == earlier  # the dashboard still serves the whole first page
    assert sorted(path.name for path in folder.iterdir()) == [served.name]


def test_a_named_pipe_is_written_through_not_replaced_by_a_file(tmp_path):
    """As /dev/null or /dev/stdout would be: a file in their place would break the system."""
    pipe = tmp_path / "report.html"
    os.mkfifo(pipe)
    heard: list[bytes] = []
    reader = threading.Thread(target=lambda: heard.append(pipe.read_bytes()))
    reader.start()

    output_file.write_text(pipe, "<p>plots</p>", "-o")

    reader.join(timeout=10)
    assert heard == [b"<p>plots</p>"]
    assert stat.S_ISFIFO(pipe.stat().st_mode)
