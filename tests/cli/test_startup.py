"""The commands that read a study never load torch: --help, status, report, export, trials and the
dashboard answer in a second or two (benchmarks/cli_startup.py measures how fast)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.dashboard import free_port
from tests.helpers.small_search import build_small_search

# Runs commands in turn in one fresh interpreter (each interpreter costs a second), saying after
# each which of torch and torchvision are loaded: once one command loads torch every later one
# shows it too, so a test wanting none loaded fails, and names the first that loaded it. A server
# never returns, so a command given a URL runs in a thread until the URL answers.
PROBE = """
import json, sys, threading, time, urllib.request
from search.cli import main

def status_of(argv, url):
    if url == "-":
        try:
            return main(argv)
        except SystemExit as exit:  # --help
            return exit.code
    threading.Thread(target=main, args=(argv,), daemon=True).start()
    for _ in range(600):
        try:
            return 0 if urllib.request.urlopen(url, timeout=1).status == 200 else 1
        except OSError:
            time.sleep(0.1)
    return 1

url, found = sys.argv[1], []
for argv in json.loads(sys.argv[2]):
    status = status_of(argv, url)
    loaded = [name for name in ("torch", "torchvision") if name in sys.modules]
    found.append({"status": status, "loaded": loaded})
print(json.dumps(found), file=sys.stderr, flush=True)
"""


@pytest.fixture(scope="module")
def small_search(tmp_path_factory):
    return build_small_search(tmp_path_factory.getbasetemp() / "small-search")


def probe(*commands: list, url: str = "-") -> list[dict]:
    """What each command (an argv) returned and had loaded, run in turn in one interpreter."""
    argvs = json.dumps([[str(arg) for arg in argv] for argv in commands])
    ran = subprocess.run(
        [sys.executable, "-c", PROBE, url, argvs], capture_output=True, text=True, timeout=120
    )
    return json.loads(ran.stderr.splitlines()[-1])


def probe_each(commands: dict[str, list]) -> dict[str, dict]:
    return dict(zip(commands, probe(*commands.values()), strict=True))


def test_commands_that_read_a_study_load_no_torch(tmp_path, small_search):
    storage = ["--storage", small_search.url]
    study = ["--study", small_search.study]
    exported = tmp_path / "best.toml"
    commands = {
        "help": ["--help"],
        "run --help": ["run", "--help"],
        "status": ["status", *storage],
        "report": ["report", *storage, *study, "-o", tmp_path / "report.html"],
        "export": ["export", *storage, *study, "-o", exported]
        + ["--checkpoint-dir", small_search.images.parent / "checkpoints"],
        "trials": ["trials", *storage, *study, "-o", tmp_path / "trials.csv"],
    }
    found = probe_each(commands)
    assert found == {name: {"status": 0, "loaded": []} for name in commands}
    # Export checked the weights' owner (without torch) and copied them beside the settings
    assert exported.with_name("best.weights.pt").is_file()


def test_the_dashboard_serves_without_torch(small_search):
    port = free_port()
    dashboard = ["dashboard", "--storage", small_search.url, "--port", port]
    found = probe(dashboard, url=f"http://127.0.0.1:{port}/dashboard/")
    assert found == [{"status": 0, "loaded": []}]


NO_SERVER = "postgresql+psycopg://root@127.0.0.1:1/studies"  # port 1: refused at once


def test_a_bad_request_is_refused_before_torch_loads(tmp_path):
    """`run` and `worker` load torch (seconds) only once the study file, the flags, the storage
    URL and the data path passed their checks, and `run` (which waits for no storage unless told
    to) once the database server answered; `train` once its settings and data path did, `evaluate`
    once its weights and data paths did."""
    study_file = tmp_path / "study.toml"
    study_file.write_text('[study]\nname = "typo"\ntrails = 8\n', encoding="utf-8")
    commands = {
        "run, a study file's typo": ["run", study_file],
        "worker, a study file's typo": ["worker", study_file],
        "run --study with --epochs": ["run", "--study", "s", "--epochs", "2"],
        "run, neither file nor --study": ["run", "--workers", "2"],
        "run on an in-memory database": ["run", "--study", "s", "--storage", "sqlite://"],
        "run on a data folder not there": ["run", "--study", "s", "--data", tmp_path / "typo"],
        "run on a server not there": ["run", "--study", "s", "--storage", NO_SERVER],
        "slurm --workers 0": ["slurm", "--study", "s", "--workers", "0"],
        "slurm --time of a format SLURM reads not": ["slurm", "--study", "s", "--time", "1h"],
        "train, a setting out of range": ["train", "--lr", "-1"],
        "train on a data folder not there": ["train", "--data", tmp_path / "typo"],
        "evaluate, weights not there": ["evaluate", tmp_path / "typo.pt", "--data", tmp_path],
        "evaluate, a folder for weights": ["evaluate", tmp_path, "--data", tmp_path],
        "evaluate on a data folder not there": ["evaluate", study_file, "--data", tmp_path / "x"],
    }
    found = probe_each(commands)
    assert found == {name: {"status": 2, "loaded": []} for name in commands}


def test_the_probe_sees_torch_where_a_command_trains(tmp_path):
    # evaluate loads torch to read a weights file that is there, and then refuses what it holds:
    # the probe must say so
    weights = tmp_path / "weights.pt"
    weights.write_text("not weights", encoding="utf-8")
    found = probe(["evaluate", weights, "--data", tmp_path, "--device", "cpu"])
    assert found == [{"status": 2, "loaded": ["torch", "torchvision"]}]


# Which OpenMP settings the environment held when torch was about to be imported, in a command
# that loads it (evaluate, of a weights file that is there): the process ends there, as the
# import would cost seconds to no purpose.
SPIN_PROBE = """
import json, os, sys
from search.cli import main


class WatchTorch:
    def find_spec(self, name, path, target=None):
        if name == "torch":
            seen = {key: os.environ.get(key) for key in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
            print(json.dumps({"seen": seen}), file=sys.stderr, flush=True)
            os._exit(0)


sys.meta_path.insert(0, WatchTorch())
open("weights.pt", "w").close()  # there, so that evaluate goes on to read it with torch
status = main(["evaluate", "weights.pt", "--data", ".", "--device", "cpu"])
print(json.dumps({"status": status, "torch not imported": True}), file=sys.stderr, flush=True)
"""


@pytest.mark.parametrize(
    "users, expected",
    [
        ({}, {"GOMP_SPINCOUNT": "10000", "OMP_WAIT_POLICY": None}),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": "ACTIVE"}),
        ({"GOMP_SPINCOUNT": "1"}, {"GOMP_SPINCOUNT": "1", "OMP_WAIT_POLICY": None}),
    ],
    ids=["by default", "the user's policy", "the user's spin"],
)
def test_openmp_spins_briefly_from_before_torch_loads_unless_the_user_chose(
    tmp_path, monkeypatch, users, expected
):
    """A thread waiting at an OpenMP barrier spins briefly, then sleeps: with another job on
    every core, the long default spin cost training two thirds of its share (busy_cpu.py)."""
    for key in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in users.items():
        monkeypatch.setenv(key, value)
    probe = [sys.executable, "-c", SPIN_PROBE]
    ran = subprocess.run(probe, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    result = json.loads(ran.stderr.splitlines()[-1])
    assert result == {"seen": expected}, ran.stderr
