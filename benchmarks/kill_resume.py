"""From SIGKILL to resumed training: how long a killed search's trial waits before it trains again.

`hpsearch run` is started on a one-trial study (real Imagenette, capped per class, 32 px, a
checkpoint every epoch, the heartbeat defaults: 30 s beats, 120 s grace), killed with SIGKILL
once its first checkpoint exists, and started again at once, as a user would. The figure is
the time from the kill to the retry's start (its claim in the storage), and to the end of the
run; the retry's `resumed_from_epoch` says how much training was kept. Both processes are real
(`python -m search run`), so the time includes Python and torch starting and the cached data
loading, which a user waits for too.

    python benchmarks/kill_resume.py [--data imagenette2-128.tar.gz] [--postgres]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import psycopg

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "imagenette2-128.tar.gz"
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "root", "dbname": "postgres"}
STUDY = """
[study]
name = "kill-resume"
trials = 1
seed = 0

[data]
source = "{data}"
image_size = 32
batch_size = 64
per_class = 40

[train]
epochs = 6

[space]
optimizer = ["adam"]
lr = 1e-3
eps = 1e-8

[pruner]
kind = "none"

[checkpoint]
every_epochs = 1
"""


def run(study: Path, url: str, folder: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "search", "run", str(study), "--storage", url]
    command += ["--device", "cpu", "--no-progress", "--checkpoint-dir", str(folder / "ckpt")]
    command += ["--cache-dir", str(folder / "cache")]
    return subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def measure(study: Path, url: str, folder: Path) -> dict:
    first = run(study, url, folder)
    while not list((folder / "ckpt").glob("*/trial-0/last.pt")):
        if first.poll() is not None:
            raise RuntimeError(first.stderr.read().decode())
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    killed = time.time()
    first.wait()
    second = run(study, url, folder)
    _, err = second.communicate()
    finished = time.time()
    if second.returncode != 0:
        raise RuntimeError(err.decode())
    trials = optuna.load_study(study_name="kill-resume", storage=url).trials
    retry = trials[-1]
    return {
        "backend": url.split(":")[0],
        "seconds_kill_to_retry_start": round(retry.datetime_start.timestamp() - killed, 2),
        "seconds_kill_to_done": round(finished - killed, 2),
        "resumed_from_epoch": retry.user_attrs.get("resumed_from_epoch"),
        "epochs_before_kill": len(trials[0].intermediate_values),
        "states": [trial.state.name for trial in trials],
    }


def postgres_database() -> tuple[str, str]:
    name = f"hpsearch_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**POSTGRES, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://root@127.0.0.1:5432/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--postgres", action="store_true", help="also on 127.0.0.1:5432")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    results = []
    for backend in ("sqlite", "postgresql") if args.postgres else ("sqlite",):
        with tempfile.TemporaryDirectory(prefix="kill-resume-") as temporary:
            folder = Path(temporary)
            study = folder / "study.toml"
            study.write_text(STUDY.format(data=args.data.resolve()))
            database = None
            if backend == "sqlite":
                url = f"sqlite:///{folder / 'study.db'}"
            else:
                database, url = postgres_database()
            try:
                results.append(measure(study, url, folder))
            finally:
                if database:
                    with psycopg.connect(**POSTGRES, autocommit=True) as connection:
                        connection.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        print(json.dumps(results[-1]), flush=True)
    record = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()} CPUs, no GPU",
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
