"""How long a command that reads a study takes, start to exit: `hpsearch --help` and `hpsearch
status` on a small study, against Optuna's own CLI (`optuna --help`, `optuna studies`) on the
same storage, with the interpreter alone (`python -c pass`) and what loading torch and
torchvision costs (`python -c "import torch, torchvision"`: what every hpsearch command paid
before they stopped importing it); how long `hpsearch run` takes to refuse a study file with a
typo (exit 2), which a newcomer meets first; and a whole `hpsearch run --workers 2` of two
one-epoch trials on 124 small images (tests/helpers/images.py) into a new SQLite file each time:
mostly the start of a run with worker processes.

With `--before DIR` (a copy of the project from before a change: `git archive COMMIT | tar -x -C
DIR`), the same four hpsearch commands run from that copy too (`python -m search`, with DIR as
the working folder, so its `search` and `trainer` are the ones imported), in the same rounds.

Every command is a fresh process, timed from start to exit by the wall clock. The commands are
interleaved, round after round (one warm-up round first, not counted, so that every one finds its
files in the page cache and its bytecode compiled), and each one's median, fastest and slowest
are reported with the machine, the date and the load.

    .venv/bin/python -m benchmarks.cli_startup --repeats 7 --before /tmp/before --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from tests.helpers.images import make_image_folder
from tests.helpers.studies import write_study


def small_study(url: str, trials: int = 20) -> None:
    """A finished study of `trials` trials, as status reads it."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = optuna.create_study(study_name="small", storage=url, direction="maximize")
    study.set_metric_names(["val_top1"])
    lr = FloatDistribution(1e-4, 1.0, log=True)
    for number in range(trials):
        value = 0.5 + number / (4 * trials)
        study.add_trial(
            create_trial(
                params={"lr": 10.0 ** -(number % 4)}, distributions={"lr": lr}, value=value
            )
        )


# A study file whose [study] holds a misspelt key: refused, exit 2, before anything is written
TYPO_STUDY = '[study]\nname = "typo"\ntrails = 8\n'
REFUSED = "hpsearch run typo.toml"
TWO_WORKERS = "hpsearch run --workers 2"


def tiny_study(folder: Path) -> Path:
    """Two one-epoch trials at 32 px on 124 train images: a run that is mostly its start."""
    images = make_image_folder(folder / "images")
    return write_study(folder, images, name="tiny", trials=2, epochs=1)


def run_afresh(command: list[str], database: Path) -> list[str]:
    """`command` on a new study each time: its SQLite file removed first (milliseconds)."""
    return ["bash", "-c", f'rm -f "{database}" && exec "$@"', "run_afresh", *command]


def commands(url: str, typo: Path, tiny: Path, before: Path | None) -> dict[str, list[str]]:
    bin_dir = Path(sys.executable).parent
    hpsearch = [str(bin_dir / "hpsearch")] if (bin_dir / "hpsearch").exists() else []
    optuna_cli = shutil.which("optuna", path=str(bin_dir)) or shutil.which("optuna")
    if not hpsearch or optuna_cli is None:
        raise SystemExit("run with the project's virtual environment: no hpsearch or optuna here")
    database = tiny.parent / "tiny.db"
    two_workers = ["run", str(tiny), "--workers", "2", "--device", "cpu", "--no-progress"]
    two_workers += ["--storage", f"sqlite:///{database}"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import torch, torchvision": [sys.executable, "-c", "import torch, torchvision"],
        "optuna --help": [optuna_cli, "--help"],
        "optuna studies": [optuna_cli, "studies", "--storage", url],
        "hpsearch --help": [*hpsearch, "--help"],
        "hpsearch status": [*hpsearch, "status", "--storage", url],
        REFUSED: [*hpsearch, "run", str(typo)],
        TWO_WORKERS: run_afresh([*hpsearch, *two_workers], database),
        **(
            {
                "before: hpsearch --help": [sys.executable, "-m", "search", "--help"],
                "before: hpsearch status": [sys.executable, "-m", "search", "status"]
                + ["--storage", url],
                f"before: {REFUSED}": [sys.executable, "-m", "search", "run", str(typo)],
                f"before: {TWO_WORKERS}": run_afresh(
                    [sys.executable, "-m", "search", *two_workers], database
                ),
            }
            if before is not None
            else {}
        ),
    }


def seconds_to_run(name: str, command: list[str], folder: Path | None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=folder)
    seconds = time.perf_counter() - start
    expected = 2 if name.endswith(REFUSED) else 0  # the typo refused; everything else runs
    if done.returncode != expected:
        raise SystemExit(f"{name}: exit {done.returncode}, not {expected}: {done.stderr.strip()}")
    return seconds


def measure(
    runs: dict[str, list[str]], repeats: int, before: Path | None
) -> dict[str, list[float]]:
    def folder(name: str) -> Path | None:  # `python -m` imports from the working folder first
        return before if name.startswith("before:") else None

    for name, command in runs.items():  # warm-up: page cache and bytecode
        seconds_to_run(name, command, folder(name))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, command in runs.items():
            times[name].append(seconds_to_run(name, command, folder(name)))
    return times


def machine() -> str:
    names = {
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    }
    return f"{', '.join(sorted(names)) or platform.processor()}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds counted (default 7)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--before", type=Path, metavar="DIR", help="a copy of the project before a change"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'small.db'}"
        small_study(url)
        typo = Path(folder) / "typo.toml"
        typo.write_text(TYPO_STUDY, encoding="utf-8")
        tiny = tiny_study(Path(folder))
        load_before = os.getloadavg()[0]
        times = measure(commands(url, typo, tiny, args.before), args.repeats, args.before)
        load_after = os.getloadavg()[0]
    summary = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        "machine": machine(),
        "python": platform.python_version(),
        "load": [round(load_before, 1), round(load_after, 1)],
        "repeats": args.repeats,
        "seconds": {
            name: {
                "median": round(statistics.median(runs), 2),
                "fastest": round(min(runs), 2),
                "slowest": round(max(runs), 2),
            }
            for name, runs in times.items()
        },
    }
    print(f"{summary['date']}, {summary['machine']}, load {load_before:.1f} -> {load_after:.1f}")
    print(f"{args.repeats} interleaved rounds after one warm-up; seconds from start to exit\n")
    print("| command | median | fastest | slowest |\n|---|---|---|---|")
    for name, figures in summary["seconds"].items():
        print(f"| `{name}` | {figures['median']:.2f} | {figures['fastest']:.2f} | "
              f"{figures['slowest']:.2f} |")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
