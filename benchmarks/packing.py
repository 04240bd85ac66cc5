"""Trials per hour and training images/s of K trials on one device: fused in one worker
(`--trials-per-worker K`) against K worker processes (`--workers-per-gpu K`), side by side.

studies/imagenette.toml shortened to --epochs per trial at --image-size and --batch-size, with no
pruner (every trial does the same work) and [study] timeout_minutes = --minutes, runs once per arm
through `search.launch.local.launch`, each on a fresh SQLite study:
- K = 1: one worker, one trial at a time (fused K = 1 and one process per device are the same);
- fused K: one worker with WorkerOptions(trials_per_worker=K), launched with workers=1;
- processes K: `--workers-per-gpu K` on GPU 0, one trial each; on a CPU `--workers K`, which
  share the cores (and, unlike the workers of the other arms, start as processes of their own).
A worker starts no trial after its timeout and finishes those it runs, so each arm's wall time,
from launch to the last worker's exit (start-up and loading the cached images included), is what
the hourly figures divide by. Images/s counts every trial's training images (epochs run, those
of trials the end cut short included, times the images an epoch trains) over that wall time, and
over the training window (first trial's start to the last one's end, start-up excluded), which
is what a long search would see. The image cache is filled before the first arm; the K > 1 arms
alternate which of fused and processes runs first.

    python3 -m benchmarks.packing --data $IMAGENETTE_DIR --device cuda --settings 1 2 4 8 \\
        --minutes 1 --epochs 3 --json packing.json
    python -m benchmarks.packing --data ../shared/data/imagenette2-128.tar.gz --device cpu \\
        --image-size 32 --per-class 50 --epochs 2 --settings 1 4 --minutes 1
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from search.studyfile import StudyConfig

SINGLE, FUSED, PROCESSES = "single", "fused", "processes"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", required=True, help="folder with train/ and val/, or a .tar.gz of one"
    )
    parser.add_argument(
        "--device", default="cuda", type=device_name, help="cpu, cuda or cuda:N (GPU N alone)"
    )
    parser.add_argument("--minutes", type=float, default=0.2, help="timeout of each arm's study")
    parser.add_argument("--epochs", type=int, default=2, help="per trial")
    parser.add_argument("--image-size", type=int, default=128, help="px")
    parser.add_argument("--batch-size", type=int, default=64, help="per trial")
    parser.add_argument("--per-class", type=int, help="training images per class (default: all)")
    parser.add_argument(
        "--settings", type=int, nargs="+", default=[1, 2, 4, 8], help="trials K on the device"
    )
    parser.add_argument(
        "--arms",
        nargs="+",
        choices=[FUSED, PROCESSES],
        default=[FUSED, PROCESSES],
        help="how K > 1 trials share the device (K = 1, if in --settings, runs once, first)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads of the one-worker arms, which run in this process on a CPU (1 on a "
        "shared CPU; K worker processes take the cores' share each)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if min(args.settings) < 1 or args.minutes <= 0 or args.epochs < 1:
        parser.error(
            f"--settings takes whole numbers >= 1 (got {args.settings}), --minutes a number > 0 "
            f"(got {args.minutes}) and --epochs at least 1 (got {args.epochs})"
        )
    return args


def arm_order(settings: list[int], kinds: list[str]) -> list[tuple[str, int]]:
    """K = 1 once, first; then each K's arms, which one first alternating from K to K, so that
    neither always runs on a device the arm before has just warmed (or heated)."""
    order = [(SINGLE, 1)] if 1 in settings else []
    larger = sorted({k for k in settings if k > 1})
    for index, k in enumerate(larger):
        pair = [kind for kind in (FUSED, PROCESSES) if kind in kinds]
        order += [(kind, k) for kind in (pair if index % 2 == 0 else pair[::-1])]
    return order


def study_file(args: argparse.Namespace, name: str, folder: Path) -> Path:
    from benchmarks.gpu_check import timed_study, toml_text

    document = timed_study(name, args)
    document["data"]["batch_size"] = args.batch_size
    document["pruner"] = {"kind": "none"}
    path = folder / f"{name}.toml"
    path.write_text(toml_text(document))
    return path


def device_name(text: str) -> str:
    """`cpu`, `cuda` (GPU 0) or `cuda:N`, as GPU_CHECK_DEVICE may name it; else argparse's error."""
    kind, _, index = text.partition(":")
    if text in ("cpu", "cuda") or kind == "cuda" and index.isdigit():
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not cpu, cuda or cuda:N")


def placement(device: str) -> tuple[str, list[int] | None]:
    """The workers' device and GPU list for `--device`: one device, whatever the machine has; a
    GPU's workers see it alone (CUDA_VISIBLE_DEVICES), so `cuda:1` is their `cuda`."""
    kind, _, index = device.partition(":")
    return kind, [int(index or 0)] if kind == "cuda" else None


def launch_arm(config: StudyConfig, storage: str, device: str, kind: str, k: int) -> None:
    """Run the arm's study to its timeout: one worker (of K slots when fused), or K processes."""
    from search.launch.local import launch
    from search.run.worker import WorkerOptions

    kind_of_device, gpus = placement(device)
    options = WorkerOptions(
        storage, device=kind_of_device, progress=False, trials_per_worker=k if kind == FUSED else 1
    )
    if kind == PROCESSES:
        launch(config, options, workers=None if gpus else k, gpus=gpus, workers_per_gpu=k)
    else:
        launch(config, options, workers=1, gpus=gpus)


def run_arm(
    args: argparse.Namespace, kind: str, k: int, folder: Path, images_per_epoch: int
) -> dict:
    import optuna

    from search.studyfile import load_study_config

    config = load_study_config(study_file(args, f"packing-{kind}-{k}", folder))
    storage = f"sqlite:///{folder / config.study.name}.db"
    load = os.getloadavg()[0]
    started = time.monotonic()
    launch_arm(config, storage, args.device, kind, k)
    seconds = time.monotonic() - started
    trials = optuna.load_study(study_name=config.study.name, storage=storage).get_trials(
        deepcopy=False
    )
    return {
        "arm": kind,
        "k": k,
        "seconds": round(seconds, 2),
        "load": [round(load, 2), round(os.getloadavg()[0], 2)],
        **figures(trials, seconds, images_per_epoch),
    }


def figures(trials: list, seconds: float, images_per_epoch: int) -> dict:
    from optuna.trial import TrialState

    from search import attrs

    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    epochs = sum(trial.user_attrs.get(attrs.EPOCHS_RUN, 0) for trial in trials)
    history = [epoch for trial in trials for epoch in trial.user_attrs.get(attrs.HISTORY, [])]
    starts = [trial.datetime_start for trial in trials if trial.datetime_start]
    ends = [trial.datetime_complete for trial in trials if trial.datetime_complete]
    window = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    images = epochs * images_per_epoch
    return {
        "trials_complete": len(complete),
        "trials_other": len(trials) - len(complete),
        "epochs_trained": epochs,
        "images_trained": images,
        "trials_per_hour": round(3600 * len(complete) / seconds, 1),
        "epochs_per_hour": round(3600 * epochs / seconds, 1),
        "images_per_second": round(images / seconds, 1),
        "window_seconds": round(window, 2) if window else None,
        "window_images_per_second": round(images / window, 1) if window else None,
        # how full the fused worker's slots were, epoch by epoch: K but for the last round
        "mean_fused_trials": (
            round(sum(epoch.get("fused_trials", 1) for epoch in history) / len(history), 2)
            if history
            else None
        ),
        "best_val_top1": max((trial.value for trial in complete), default=None),
    }


def images_per_epoch(args: argparse.Namespace, folder: Path) -> int:
    """Decode and cache the images once, before any arm is timed; what one epoch trains."""
    from search.run.study_data import load_study_data
    from search.studyfile import load_study_config
    from trainer.augment import steps_per_epoch

    config = load_study_config(study_file(args, "packing-data", folder))
    count = len(load_study_data(config, progress=False).train)
    return min(steps_per_epoch(count, args.batch_size) * args.batch_size, count)


def format_table(results: list[dict]) -> str:
    base = next((result for result in results if result["arm"] == SINGLE), None)
    lines = [
        "| arm | K | trials | epochs | wall s | trials/h | epochs/h | images/s | vs K=1 "
        "| images/s in window | fused a network (mean) | best val top-1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        trials = str(result["trials_complete"])
        if result["trials_other"]:
            trials += f" (+{result['trials_other']} not complete)"
        ratio = (
            base
            and base["images_per_second"]
            and result["images_per_second"] / base["images_per_second"]
        )
        window, fused = result["window_images_per_second"], result["mean_fused_trials"]
        best = result["best_val_top1"]
        cells = [
            result["arm"],
            result["k"],
            trials,
            result["epochs_trained"],
            f"{result['seconds']:.0f}",
            f"{result['trials_per_hour']:,.0f}",
            f"{result['epochs_per_hour']:,.0f}",
            f"{result['images_per_second']:,.0f}",
            f"{ratio:.2f}x" if ratio else "-",
            f"{window:,.0f}" if window else "-",
            f"{fused:.2f}" if fused else "-",
            f"{best:.2%}" if best is not None else "-",
        ]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import warnings

    import optuna
    import torch

    from benchmarks.throughput import machine

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HPSEARCH_CHECKPOINTS", tempfile.mkdtemp(prefix="packing-checkpoints-"))
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **machine(torch.device(args.device)),
        **{key: getattr(args, key) for key in ("image_size", "batch_size", "epochs", "minutes")},
        "per_class": args.per_class,
        "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="packing-") as name:
        folder = Path(name)
        report["images_per_epoch"] = images_per_epoch(args, folder)
        for kind, k in arm_order(args.settings, args.arms):
            report["results"].append(run_arm(args, kind, k, folder, report["images_per_epoch"]))
            result = report["results"][-1]
            print(
                f"{kind} K={k}: {result['trials_complete']} trials, {result['epochs_trained']} "
                f"epochs in {result['seconds']:.0f} s, {result['images_per_second']:,.0f} images/s "
                f"(load {result['load'][0]:.2f} -> {result['load'][1]:.2f})",
                flush=True,
            )
    print(
        f"{report['gpu'] or report['cpu']}, {args.image_size} px, batch {args.batch_size}, "
        f"{args.epochs}-epoch trials of {report['images_per_epoch']} images an epoch, "
        f"{args.minutes} min an arm, {report['date']}"
    )
    print(format_table(report["results"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
