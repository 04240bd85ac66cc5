"""What a worker's log says when no one watches a terminal: a line per event, never a bar that
rewrites itself; and, for log collectors, one JSON object a line."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys

import optuna
import pytest

import search.run.worker
from search import attrs
from search.cli import main
from search.run.log import WorkerLog, log_warnings
from search.study.space import suggest
from search.studyfile import load_study_config
from tests.helpers.studies import write_study
from tests.run.test_dead_workers import NAME, a_gone_process

TIMESTAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
LOGGERS = ("hpsearch", "trainer")


@pytest.fixture(autouse=True)
def loggers_as_they_were():
    """A worker routes its loggers' warnings into its log for the rest of its process; a test's
    worker must not do so for the tests after it."""
    before = {name: list(logging.getLogger(name).handlers) for name in LOGGERS}
    yield
    for name in LOGGERS:
        logging.getLogger(name).handlers[:] = before[name]


def test_a_run_into_a_log_says_one_line_per_trial_and_nothing_rewrites_itself(
    tmp_path, image_folder, cache_dir
):
    storage_url = f"sqlite:///{tmp_path / 'studies.db'}"
    path = write_study(tmp_path, image_folder, trials=3, epochs=2)
    run = subprocess.run(
        [sys.executable, "-m", "search", "run", str(path), "--storage", storage_url]
        + ["--cache-dir", str(cache_dir), "--device", "cpu"],
        capture_output=True,  # standard error is a pipe, as in a log file, not a terminal
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr  # no progress bar, which redraws itself with carriage returns
    lines = run.stderr.splitlines()
    assert all(re.match(TIMESTAMP, line) for line in lines), run.stderr
    words = [line[20:] for line in lines]
    assert words[0].startswith(f"worker started: study {NAME!r} in {storage_url}, device cpu")
    assert "(124 train / 36 val images, 32 px)" in words[0]
    trial_lines = [re.fullmatch(r"trial (\d) (COMPLETE|PRUNED|FAIL): (.*)", w) for w in words[1:-1]]
    assert [match.group(1) for match in trial_lines] == ["0", "1", "2"], run.stderr
    for match in trial_lines:
        assert re.match(r"best val top-1 \d+\.\d\d% in [12] epoch\(s\), \d+ s", match.group(3))
        assert "optimizer=" in match.group(3) and "lr=" in match.group(3)
        if match.group(2) == "PRUNED":
            assert "(pruned after epoch 1 at val top-1 " in match.group(3)
    assert words[-1] == f"worker finished 3 trial(s) of study {NAME!r} (nothing left to run)"


def test_json_log_parses_line_by_line_and_tells_of_a_dead_trial_and_its_retry(
    tmp_path, image_folder, cache_dir, pg_url, capfd, one_torch_thread
):
    url = pg_url.replace("root@", "root:s3cret-pw@")  # trust auth: the password only shows
    path = write_study(tmp_path, image_folder, trials=2, epochs=1)
    assert main(["run", str(path), "--storage", url, "--create-only", "--device", "cpu"]) == 0
    study = optuna.load_study(study_name=NAME, storage=url)
    assert study.metric_names == [attrs.METRIC]  # stored: the dashboard names the value
    dead = study.ask()
    suggest(dead, load_study_config(path))
    dead.set_user_attr(attrs.WORKER, a_gone_process())
    capfd.readouterr()

    worker = ["worker", "--study", NAME, "--storage", url, "--device", "cpu"]
    assert main([*worker, "--cache-dir", str(cache_dir), "--log-format", "json"]) == 0

    err = capfd.readouterr().err
    assert "s3cret-pw" not in err
    records = [json.loads(line) for line in err.splitlines()]
    assert [record["event"] for record in records] == [
        "worker_started",
        "dead_trial",
        "trial_finished",
        "trial_finished",
        "worker_ended",
    ]
    assert all(record["study"] == NAME for record in records)
    assert all(re.fullmatch(r"\d{4}-.*T.*\+00:00", record["time"]) for record in records)
    started, died, retry, new, ended = records
    assert started["storage"] == url.replace("s3cret-pw", "***") and started["device"] == "cpu"
    assert (started["train_images"], started["val_images"], started["image_size"]) == (124, 36, 32)
    assert died["trial"] == 0 and died["retried"] and "is gone" in died["reason"]
    assert died["checkpoint"] is False  # killed before its first: its retry starts over
    assert (retry["trial"], retry["retry_of"], retry["params"]) == (1, 0, dead.params)
    assert new["trial"] == 2 and "retry_of" not in new
    for trial in (retry, new):
        assert trial["state"] in ("COMPLETE", "PRUNED") and trial["epochs"] == 1
        assert 0 <= trial[attrs.METRIC] <= 1 and trial["seconds"] >= 0
    assert ended["finished"] == 2 and ended["why"] == "nothing left to run"


def test_warnings_of_hpsearch_and_the_trainer_are_lines_of_the_log(capfd):
    log_warnings("json")
    log_warnings("json")  # a second worker in the process: still one line per warning
    logging.getLogger("hpsearch.storage").warning("storage unreachable; retrying in %d s", 5)
    logging.getLogger("trainer.checkpoint").warning("checkpoint set aside")
    records = [json.loads(line) for line in capfd.readouterr().err.splitlines()]
    assert [(r["event"], r["logger"], r["message"]) for r in records] == [
        ("warning", "hpsearch.storage", "storage unreachable; retrying in 5 s"),
        ("warning", "trainer.checkpoint", "checkpoint set aside"),
    ]

    log_warnings(None)  # a later search in the process (a notebook's) logs to a terminal
    logging.getLogger("trainer.checkpoint").warning("checkpoint set aside")
    assert '"event": "warning"' not in capfd.readouterr().err


def test_a_note_in_a_json_log_carries_its_words(capfd):
    # A note (a stop asked for, a trial taken away, weights not saved) has nothing but its words
    log = WorkerLog("json", NAME)
    log.note("SIGTERM: stopping at a clean point")
    log.taken_away(3, "its worker sent no heartbeat for 60 s")
    records = [json.loads(line) for line in capfd.readouterr().err.splitlines()]
    assert [(record["event"], record["study"]) for record in records] == [("note", NAME)] * 2
    assert records[0]["message"] == "SIGTERM: stopping at a clean point"
    assert records[1]["message"].startswith("trial 3 was failed meanwhile by another worker (its")


def test_a_json_log_ends_in_json_on_an_error_or_a_second_ctrl_c(tmp_path, monkeypatch, capfd):
    """The command's last line (`hpsearch: error: ...`, `hpsearch: interrupted`) was plain text
    at the end of a JSON log, which a log collector drops or misparses."""

    def interrupted_twice(request, options, *, stop):  # in place of the worker's training
        signal.raise_signal(signal.SIGINT)  # a first Ctrl-C: stop at a clean point
        signal.raise_signal(signal.SIGINT)  # a second: out at once
        raise AssertionError("a second SIGINT did not interrupt the worker")

    url = f"sqlite:///{tmp_path / 's.db'}"
    worker = ["worker", "--study", NAME, "--storage", url, "--device", "cpu", "--log-format"]
    missing = tmp_path / "missing.toml"
    assert main(["worker", str(missing), *worker[3:], "json"]) == 2
    monkeypatch.setattr(search.run.worker, "run_worker", interrupted_twice)
    assert main([*worker, "json"]) == 130
    records = [json.loads(line) for line in capfd.readouterr().err.splitlines()]
    assert [record["event"] for record in records] == ["error", "note", "interrupted"]
    assert str(missing) in records[0]["message"] and re.match(r"\d{4}-", records[0]["time"])
    assert records[1]["message"].startswith("SIGINT: stopping at a clean point")

    assert main([*worker, "text"]) == 130  # a log for people ends as ever
    assert capfd.readouterr().err.splitlines()[-1] == "hpsearch: interrupted"


WRITER = """
import sys
from search.run.log import WorkerLog, last_line
log = WorkerLog(sys.argv[1], "s")
for n in range(2000):
    log.note(f"line {n} of worker {sys.argv[2]}")
last_line(sys.argv[1], "interrupted")
"""


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_workers_sharing_one_standard_error_never_glue_their_lines(log_format):
    # Each line went out in two writes, its words and then its newline: two workers' lines met
    # on one line (a JSON log's two objects, unparseable) whenever their writes interleaved
    read, write = os.pipe()
    workers = [
        subprocess.Popen([sys.executable, "-c", WRITER, log_format, str(n)], stderr=write)
        for n in range(2)
    ]
    os.close(write)
    with os.fdopen(read) as shared:
        lines = shared.read().splitlines()
    assert [worker.wait() for worker in workers] == [0, 0]
    assert len(lines) == 2 * 2001
    if log_format == "json":
        assert all(isinstance(json.loads(line), dict) for line in lines)
    else:
        said = TIMESTAMP + r"line \d+ of worker \d|hpsearch: interrupted"
        assert all(re.fullmatch(said, line) for line in lines)
