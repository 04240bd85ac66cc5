"""Trials per hour with one worker per GPU and with
two: the same study, the same minutes, side by side.

studies/imagenette.toml shortened to --epochs per trial, with no pruner (every trial does the same
work) and [study] timeout_minutes = --minutes, runs once per setting through
`search.launcher.launch` (as `hpsearch run --workers-per-gpu K`), each on a fresh SQLite study. A
worker starts no trial after the timeout and finishes the one it runs, so each setting's wall time,
from launch to the last worker's exit (worker start-up and data loading included), is what the
figures divide by. On a CPU, K workers share the cores instead.

    python3 -m benchmarks.workers_per_gpu --data $IMAGENETTE_DIR --device cuda --minutes 1.5 \
        --epochs 5 --json workers_per_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.gpu_check import timed_study, toml_text


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", required=True, help="folder with train/ and val/, or a .tar.gz of one"
    )
    parser.add_argument("--device", default="cuda", help="cuda or cpu")
    parser.add_argument("--minutes", type=float, default=1.5, help="per setting")
    parser.add_argument("--epochs", type=int, default=5, help="per trial")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--per-class", type=int, help="training images per class (default: all)")
    parser.add_argument(
        "--settings", type=int, nargs="+", default=[1, 2], help="workers per GPU to compare"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser.parse_args()


def study_file(args: argparse.Namespace, per_gpu: int, folder: Path) -> Path:
    document = timed_study(f"workers-per-gpu-{per_gpu}", args)
    document["pruner"] = {"kind": "none"}
    path = folder / f"workers-per-gpu-{per_gpu}.toml"
    path.write_text(toml_text(document))
    return path


def run_setting(args: argparse.Namespace, per_gpu: int, folder: Path) -> dict:
    import optuna
    from optuna.trial import TrialState

    from search.launch import launch
    from search.run.worker import WorkerOptions
    from search.studyfile import load_study_config

    config = load_study_config(study_file(args, per_gpu, folder))
    storage = f"sqlite:///{folder / config.study.name}.db"
    on_gpu = args.device.startswith("cuda")
    started = time.monotonic()
    launch(
        config,
        WorkerOptions(storage, device=args.device, progress=False),
        workers=None if on_gpu else per_gpu,
        workers_per_gpu=per_gpu if on_gpu else 1,
    )
    seconds = time.monotonic() - started
    trials = optuna.load_study(study_name=config.study.name, storage=storage).get_trials(
        deepcopy=False
    )
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    epochs = sum(trial.user_attrs.get("epochs_run", 0) for trial in trials)
    return {
        "workers_per_gpu": per_gpu,
        "seconds": seconds,
        "trials_complete": len(complete),
        "trials_other": len(trials) - len(complete),
        "epochs_trained": epochs,
        "trials_per_hour": 3600 * len(complete) / seconds,
        "epochs_per_hour": 3600 * epochs / seconds,
        "best_val_top1": max((trial.value for trial in complete), default=None),
    }


def main() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    args = parse_args()
    os.environ.setdefault(
        "HPSEARCH_CHECKPOINTS", tempfile.mkdtemp(prefix="workers-per-gpu-checkpoints-")
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="workers-per-gpu-") as folder:
        for per_gpu in args.settings:
            results.append(run_setting(args, per_gpu, Path(folder)))
            result = results[-1]
            print(
                f"{per_gpu} worker(s) per GPU: {result['trials_complete']} trials, "
                f"{result['epochs_trained']} epochs in {result['seconds']:.0f} s = "
                f"{result['trials_per_hour']:.0f} trials/h, "
                f"{result['epochs_per_hour']:.0f} epochs/h (load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "device": args.device,
                    "image_size": args.image_size,
                    "epochs": args.epochs,
                    "minutes": args.minutes,
                    "results": results,
                },
                indent=2,
            )
            + "\n"
        )
    first, best = results[0], max(results, key=lambda result: result["epochs_per_hour"])
    gain = best["epochs_per_hour"] / first["epochs_per_hour"]
    print(
        f"best: {best['workers_per_gpu']} worker(s) per GPU, {gain:.2f}x the epochs per hour of "
        f"{first['workers_per_gpu']}"
    )


if __name__ == "__main__":
    main()
