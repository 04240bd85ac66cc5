"""What pruning saves and what it costs: one study file run twice, with its pruner and without.

Both runs get the same budget (trials), seeds, space, sampler and data, each in its own SQLite file
in a temporary folder (checkpoints too), through `search.launch.launch` as `hpsearch run` does. The
data is decoded before either run starts, so neither pays for it. Reported per run: trials complete
/ pruned / failed, epochs trained, seconds of training (the trials' own timings) and wall time, best
val top-1; the last line says what pruning saved and what it cost in accuracy. Epochs trained do not
depend on the machine's load; seconds do, so note the load printed beside them.

    .venv/bin/python -m benchmarks.search_efficiency studies/quick.toml \
        --data ../shared/data/imagenette2-128.tar.gz --device cpu --json search_efficiency.json

--trials, --epochs, --image-size and --per-class override the study file; --seeds runs the pair
once per study seed (in alternating order, so that neither arm always goes first).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from search.launch import launch
from search.run.study_data import load_study_data
from search.run.worker import WorkerOptions
from search.studyfile import StudyConfig, load_study_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "study_file", type=Path, help="e.g. studies/quick.toml; its pruner is the one tested"
    )
    parser.add_argument(
        "--data", help="folder, .tar.gz or Imagenette name; overrides the study file"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--per-class", type=int, help="training images per class")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="study seeds (default 0)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser.parse_args()


def study_configs(args: argparse.Namespace, seed: int) -> dict[str, StudyConfig]:
    config = load_study_config(args.study_file).with_overrides(
        trials=args.trials, epochs=args.epochs, data=args.data, image_size=args.image_size
    )
    data = (
        config.data
        if args.per_class is None
        else dataclasses.replace(config.data, per_class=args.per_class)
    )
    config = dataclasses.replace(
        config,
        data=data,
        study=dataclasses.replace(config.study, seed=seed),
        train=dataclasses.replace(config.train, seed=seed),
    )
    unpruned = dataclasses.replace(config, pruner=dataclasses.replace(config.pruner, kind="none"))
    return {f"pruner {config.pruner.kind}": config, "no pruning": unpruned}


def run_study(config: StudyConfig, device: str, cache_dir: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="search-efficiency-") as folder:
        options = WorkerOptions(
            f"sqlite:///{folder}/study.db",
            device=device,
            cache_dir=cache_dir,
            progress=False,
            checkpoint_dir=Path(folder) / "checkpoints",
        )
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        study = launch(config, options)
        wall = time.perf_counter() - started
        trials = study.get_trials(deepcopy=False)
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    best = max(complete, key=lambda trial: trial.value, default=None)
    return {
        "seed": config.study.seed,
        "trials": len(trials),
        "complete": len(complete),
        "pruned": sum(trial.state == TrialState.PRUNED for trial in trials),
        "failed": sum(trial.state == TrialState.FAIL for trial in trials),
        "epochs_trained": sum(trial.user_attrs.get("epochs_run", 0) for trial in trials),
        "epochs_budget": config.study.trials * config.train.epochs,
        "training_seconds": sum(trial.user_attrs.get("seconds", 0.0) for trial in trials),
        "wall_seconds": wall,
        "best_val_top1": best.value if best else None,
        "best_params": best.params if best else None,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    runs: dict[str, list[dict]] = {}
    for index, seed in enumerate(args.seeds):
        configs = study_configs(args, seed)
        # Decoded before timing
        load_study_data(next(iter(configs.values())), args.cache_dir, progress=False)
        order = list(configs.items()) if index % 2 == 0 else list(configs.items())[::-1]
        for name, config in order:
            result = run_study(config, args.device, args.cache_dir)
            runs.setdefault(name, []).append(result)
            print(f"seed {seed} {name}: {json.dumps(result)}", flush=True)
    print(
        f"\n{'run':16s} {'done':>4s} {'pruned':>6s} {'failed':>6s} {'epochs':>9s} {'train s':>8s} "
        f"{'wall s':>7s} {'best top-1':>10s}  load"
    )
    totals = {}
    for name, results in runs.items():
        totals[name] = {
            key: sum(result[key] for result in results)
            for key in (
                "complete",
                "pruned",
                "failed",
                "epochs_trained",
                "epochs_budget",
                "training_seconds",
                "wall_seconds",
            )
        }
        totals[name]["best_val_top1"] = [result["best_val_top1"] for result in results]
        for result in results:
            print(
                f"{name + ' s' + str(result['seed']):16s} {result['complete']:4d} "
                f"{result['pruned']:6d} {result['failed']:6d} "
                f"{result['epochs_trained']:4d}/{result['epochs_budget']:<4d} "
                f"{result['training_seconds']:8.0f} {result['wall_seconds']:7.0f} "
                f"{_percent(result['best_val_top1']):>10s}  "
                f"{result['load_before']:.1f}->{result['load_after']:.1f}"
            )
    pruned, full = totals.values()
    saved_epochs = 1 - pruned["epochs_trained"] / full["epochs_trained"]
    saved_wall = 1 - pruned["wall_seconds"] / full["wall_seconds"]
    pairs = zip(full["best_val_top1"], pruned["best_val_top1"])
    accuracy_cost = [
        full_best - pruned_best
        for full_best, pruned_best in pairs
        if full_best is not None and pruned_best is not None
    ]
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                        timespec="seconds"
                    ),
                    "study_file": str(args.study_file),
                    "args": {key: str(value) for key, value in vars(args).items()},
                    "runs": runs,
                    "saved_epochs": saved_epochs,
                    "saved_wall": saved_wall,
                    "accuracy_cost_points": [100 * cost for cost in accuracy_cost],
                },
                indent=2,
            )
            + "\n"
        )
    cost = ", ".join(f"{100 * value:+.1f}" for value in accuracy_cost)
    print(
        f"pruning saved {saved_epochs:.0%} of the epochs ({pruned['epochs_trained']} vs "
        f"{full['epochs_trained']}) and {saved_wall:.0%} of the wall time "
        f"({pruned['wall_seconds']:.0f} s vs {full['wall_seconds']:.0f} s); "
        f"best val top-1 cost (no pruning minus pruning, points per seed): {cost or 'n/a'}"
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


if __name__ == "__main__":
    main()
