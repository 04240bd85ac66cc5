"""Search efficiency at equal compute: which pruner finds the best trial for the same epochs.

One study file, run once per arm and study seed, every arm with the same `[study] epochs_budget`
(epochs actually trained, over the whole search), data, space and seeds, each in its own SQLite
file in a temporary folder (checkpoints too), through `search.launch.local.launch` as `hpsearch run`
does, one worker. The data is decoded before any arm starts. Arms:

    no pruning      the study file's sampler, every trial to the end
    stock optuna    what Optuna's tutorial writes: TPESampler() and MedianPruner() with their
                    defaults (10 random start-up trials, univariate; prune from the first epoch
                    after 5 finished trials), seeded for repeatability
    our median      the study file's sampler with the median pruner as `--median-warmup` and
                    `--median-startup` say (the defaults are studies/quick.toml's before asha)
    halving         Optuna's successive halving   } min_epochs and reduction_factor from
    hyperband       Optuna's hyperband            } --min-epochs and --reduction-factor
    asha            ours: successive halving that pauses and promotes (search.study.promotion)

Per arm and seed: epochs trained, wall time, the best val top-1 of the trials complete within the
budget (a single worker's last trial may run past it: what it found is not counted), and the
epochs trained until a complete trial within 0.5 points of that arm's best was first seen. The
last line compares each arm with no pruning. Epochs do not depend on the machine's load; seconds
do, so the load is printed beside them.

    .venv/bin/python -m benchmarks.search_efficiency studies/quick.toml \
        --data ../shared/data/imagenette2-128.tar.gz --per-class 50 --validation-fraction 0.2 \
        --epochs 12 --epochs-budget 36 --seeds 0 1 2 --threads 1 --json search_efficiency.json

`--trials N` instead of `--epochs-budget` compares at equal trials, as the study file runs: what
pruning saves of the epochs every trial would have trained to its end.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from search import attrs
from search.launch.local import launch
from search.run.study_data import load_study_data
from search.run.worker import WorkerOptions
from search.study.epochs_budget import epochs_trained
from search.studyfile import PrunerSettings, SamplerSettings, StudyConfig, load_study_config

NEAR_BEST = 0.005  # "within 0.5 points" of a best val top-1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study_file", type=Path, help="e.g. studies/quick.toml")
    parser.add_argument("--data", help="folder, .tar.gz or Imagenette name")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, help="epochs per trial")
    parser.add_argument("--epochs-budget", type=int, help="per arm and seed (equal compute)")
    parser.add_argument(
        "--trials", type=int, help="instead of an epoch budget: equal trials, as a study file runs"
    )
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--per-class", type=int, help="training images per class")
    parser.add_argument("--validation-fraction", type=float, help="held out of train/ to score")
    parser.add_argument("--min-epochs", type=int, default=1, help="halving, hyperband, asha")
    parser.add_argument("--reduction-factor", type=int, default=3, help="halving, hyperband, asha")
    parser.add_argument("--median-warmup", type=int, default=1)
    parser.add_argument("--median-startup", type=int, default=3)
    parser.add_argument("--arms", nargs="+", help="a subset of the arms, by name")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="study seeds")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser.parse_args()


def arms(args: argparse.Namespace) -> dict[str, Callable[[StudyConfig], StudyConfig]]:
    """Each arm as a change to the study file's configuration."""

    def pruned(**settings) -> Callable[[StudyConfig], StudyConfig]:
        return lambda config: dataclasses.replace(config, pruner=PrunerSettings(**settings))

    rungs = {"min_epochs": args.min_epochs, "reduction_factor": args.reduction_factor}
    every_arm = {
        "no pruning": pruned(kind="none"),
        "stock optuna": lambda config: dataclasses.replace(
            config,
            sampler=SamplerSettings(
                kind="tpe", multivariate=False, constant_liar=False, startup_trials=10
            ),
            pruner=PrunerSettings(kind="median", warmup_epochs=0, startup_trials=5),
        ),
        "our median": pruned(
            kind="median", warmup_epochs=args.median_warmup, startup_trials=args.median_startup
        ),
        "halving": pruned(kind="halving", **rungs),
        "hyperband": pruned(kind="hyperband", **rungs),
        "asha": pruned(kind="asha", **rungs),
    }
    return {name: arm for name, arm in every_arm.items() if not args.arms or name in args.arms}


def base_config(args: argparse.Namespace, seed: int) -> StudyConfig:
    config = load_study_config(args.study_file).with_overrides(
        epochs=args.epochs, data=args.data, image_size=args.image_size
    )
    data = dataclasses.replace(
        config.data,
        per_class=args.per_class or config.data.per_class,
        validation_fraction=args.validation_fraction or config.data.validation_fraction,
    )
    # The epoch budget ends every arm, the trial budget out of its way; or equal trials
    study = dataclasses.replace(
        config.study,
        seed=seed,
        trials=args.trials or 10_000,
        epochs_budget=args.epochs_budget,
    )
    return dataclasses.replace(
        config, data=data, study=study, train=dataclasses.replace(config.train, seed=seed)
    )


def run_arm(config: StudyConfig, device: str, cache_dir: Path | None) -> dict:
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
    return {
        "seed": config.study.seed,
        "epochs_budget": config.study.epochs_budget,
        **within_budget(trials, config.study.epochs_budget),
        "epochs_trained": epochs_trained(trials),
        "epochs_without_pruning": config.train.epochs
        * len({attrs.first_attempt(trial) for trial in trials if not _never_ran(trial)}),
        "trials": sum(1 for trial in trials if not _never_ran(trial)),
        "complete": sum(trial.state == TrialState.COMPLETE for trial in trials),
        "paused": sum(attrs.PAUSED_AT in trial.user_attrs for trial in trials),
        "promoted": sum(
            attrs.PROMOTION_OF in trial.user_attrs and not _never_ran(trial) for trial in trials
        ),
        "wall_seconds": wall,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def within_budget(trials: list[FrozenTrial], budget: int | None) -> dict:
    """The best complete trial among those finished within `budget` epochs trained (in the order
    they finished; one worker), and the epochs until one within NEAR_BEST of it finished."""
    finished = sorted(
        (trial for trial in trials if trial.state.is_finished() and not _never_ran(trial)),
        key=lambda trial: trial.datetime_complete,
    )
    spent, found = 0, []  # (epochs trained so far, value) per complete trial, in order
    for trial in finished:
        spent += epochs_trained([trial])
        if budget is not None and spent > budget:
            break
        if trial.state == TrialState.COMPLETE:
            found.append((spent, trial.value))
    if not found:
        return {"best_val_top1": None, "epochs_to_near_best": None, "found": []}
    best = max(value for _, value in found)
    best_trial = max(
        (trial for trial in finished if trial.state == TrialState.COMPLETE),
        key=lambda trial: (trial.value == best, -trial.number),
    )
    return {
        "best_val_top1": best,
        "epochs_to_near_best": next(spent for spent, value in found if value >= best - NEAR_BEST),
        "best_params": best_trial.params,
        "found": found,
    }


def _never_ran(trial: FrozenTrial) -> bool:
    """A paused trial's continuation closed without running, or a follow-up queued twice."""
    return attrs.PROMOTION_CLOSED in trial.user_attrs or attrs.DUPLICATE_OF in trial.user_attrs


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    runs: dict[str, list[dict]] = {}
    for index, seed in enumerate(args.seeds):
        config = base_config(args, seed)
        load_study_data(config, args.cache_dir, progress=False)  # decoded before timing
        # Rotated per seed, so that no arm always runs first (the machine's load drifts)
        order = list(arms(args).items())
        order = order[index % len(order) :] + order[: index % len(order)]
        for name, arm in order:
            result = run_arm(arm(config), args.device, args.cache_dir)
            runs.setdefault(name, []).append(result)
            print(f"seed {seed} {name}: {json.dumps(result)}", flush=True)
    print_table(runs, args.epochs_budget)
    print_planned(runs)
    summary = compare_with_no_pruning(runs)
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
                    "summary": summary,
                },
                indent=2,
            )
            + "\n"
        )


def print_table(runs: dict[str, list[dict]], budget: int | None) -> None:
    print(
        "\n| arm | seed | trials | complete | paused | promoted | epochs trained"
        + (f" / {budget}" if budget else "")
        + " "
        "| wall s | best val top-1 | epochs to within 0.5 | load |\n|---|---|---|---|---|---|---|"
        "---|---|---|---|"
    )
    for name, results in runs.items():
        for result in results:
            print(
                f"| {name} | {result['seed']} | {result['trials']} | {result['complete']} | "
                f"{result['paused']} | {result['promoted']} | {result['epochs_trained']} | "
                f"{result['wall_seconds']:.0f} | {_percent(result['best_val_top1'])} | "
                f"{result['epochs_to_near_best']} | "
                f"{result['load_before']:.1f}->{result['load_after']:.1f} |"
            )
    print("\n| arm | mean best val top-1 | mean epochs to within 0.5 | mean wall s |")
    print("|---|---|---|---|")
    for name, results in runs.items():
        print(
            f"| {name} | {_percent(_mean(results, 'best_val_top1'))} | "
            f"{_mean(results, 'epochs_to_near_best') or 0:.1f} | "
            f"{_mean(results, 'wall_seconds') or 0:.0f} |"
        )


def print_planned(runs: dict[str, list[dict]]) -> None:
    """Per arm: epochs trained against its own trials each run to the last epoch."""
    for name, results in runs.items():
        trained = sum(result["epochs_trained"] for result in results)
        planned = sum(result["epochs_without_pruning"] for result in results)
        print(f"{name}: {trained} epochs trained, {planned} had every trial run to the end")


def compare_with_no_pruning(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per arm, against no pruning on the same seed: its best minus no pruning's, in points, and
    the epochs it trained until a complete trial within 0.5 points of no pruning's best was first
    seen (the budget plus one where none was), over no pruning's own."""
    baseline = {
        result["seed"]: result
        for result in runs.get("no pruning", [])
        if result["best_val_top1"] is not None
    }
    summary = {}
    for name, results in runs.items():
        paired = [result for result in results if result["seed"] in baseline]
        if name == "no pruning" or not paired:
            continue
        gaps = [
            100 * ((result["best_val_top1"] or 0) - baseline[result["seed"]]["best_val_top1"])
            for result in paired
        ]
        epochs = [_epochs_to(result, baseline[result["seed"]]) for result in paired]
        baseline_epochs = [baseline[result["seed"]]["epochs_to_near_best"] for result in paired]
        summary[name] = {
            "best_minus_no_pruning_points": statistics.fmean(gaps),
            "epochs_to_no_pruning_best": epochs,
            "no_pruning_epochs_to_its_best": baseline_epochs,
            "saved": 1 - sum(epochs) / sum(baseline_epochs),
            "wall_over_no_pruning": sum(result["wall_seconds"] for result in paired)
            / sum(baseline[result["seed"]]["wall_seconds"] for result in paired),
        }
    for name, figures in summary.items():
        print(
            f"{name}: reached no pruning's best (within 0.5 points) after "
            f"{statistics.fmean(figures['epochs_to_no_pruning_best']):.1f} epochs against "
            f"{statistics.fmean(figures['no_pruning_epochs_to_its_best']):.1f} "
            f"({figures['saved']:+.0%} saved); best val top-1 "
            f"{figures['best_minus_no_pruning_points']:+.1f} points against no pruning "
            f"at equal epochs (means over seeds), at {figures['wall_over_no_pruning']:.0%} of "
            "its wall time"
        )
    return summary


def _epochs_to(result: dict, baseline: dict) -> int:
    target = baseline["best_val_top1"] - NEAR_BEST
    return next(
        (spent for spent, value in result["found"] if value >= target),
        (baseline["epochs_budget"] or baseline["epochs_trained"]) + 1,
    )


def _mean(results: list[dict], key: str) -> float | None:
    values = [result[key] for result in results if result[key] is not None]
    return statistics.fmean(values) if values else None


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


if __name__ == "__main__":
    main()
