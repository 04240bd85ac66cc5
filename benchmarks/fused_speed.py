"""What fusing trials pays: training images/s of K ResNet-18 trials fused into one grouped network
(`trainer.fused`) against one trial through the plain step (`trainer.epoch.train_one_epoch`).

Each trial trains with Ranger on the same random uint8 images kept on the device, its batches
cropped and flipped by its own generator, as in a search; images/s counts every trial's images, so
K fused trials at the same speed as one alone show K times the figure of one. The arms run in one
process, interleaved round by round, warm-up steps untimed, CUDA time taken with events; each figure
is the median of the rounds, and the ratio is against the plain step.

    python -m benchmarks.fused_speed --device cpu --image-size 32 --batch-size 32 --trials 1,4 \
        --steps 5 --repeats 3 --threads 1
    python -m benchmarks.fused_speed --device cuda --image-size 128 --batch-size 64 \
        --trials 1,2,4,8 --steps 50 --json fused.json
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from benchmarks.model_speed import NUM_CLASSES, random_split
from benchmarks.throughput import machine
from trainer import TrainConfig
from trainer.augment import Batch, train_batches
from trainer.data import ImageSplit
from trainer.device import resolve_device
from trainer.epoch import Training, train_one_epoch
from trainer.fused import FusedNetwork, train_fused_epoch
from trainer.loop import start_training
from trainer.timing import Mark

ALONE = "alone"  # the plain step of one trial: the baseline


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--trials", default="1,4", help="comma-separated K of the fused arms")
    parser.add_argument("--image-size", type=int, default=128, help="px")
    parser.add_argument("--batch-size", type=int, default=64, help="per trial")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per arm and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--threads", type=int, help="torch threads (1 on a shared CPU)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    args.trials = [int(k) for k in args.trials.split(",") if k.strip()]
    if not args.trials or min(args.trials) < 1:
        parser.error(f"--trials takes whole numbers >= 1, but got {args.trials}")
    return args


def start(args: argparse.Namespace, split: ImageSplit, device: torch.device, seed: int) -> Training:
    config = TrainConfig(
        optimizer="ranger",
        lr=8e-3,
        eps=1e-6,
        image_size=args.image_size,
        batch_size=args.batch_size,
        seed=seed,
    )
    return start_training(config, NUM_CLASSES, len(split), device, compile=False)


def endless_batches(args: argparse.Namespace, split: ImageSplit, run: Training) -> Iterator[Batch]:
    return itertools.chain.from_iterable(  # epoch after epoch of the small split
        train_batches(
            split,
            batch_size=args.batch_size,
            image_size=args.image_size,
            min_scale=0.35,
            generator=run.generator,
        )
        for _ in itertools.count()
    )


def alone_runner(
    args: argparse.Namespace, split: ImageSplit, device: torch.device
) -> Callable[[], float]:
    run = start(args, split, device, seed=0)
    batches = endless_batches(args, split, run)

    def steps(count: int, epoch: int) -> None:
        some = itertools.islice(batches, count)
        train_one_epoch(run.model, some, run.optimizer, run.scheduler, epoch=epoch)

    return timed(steps, args, device)


def fused_runner(
    trials: int, args: argparse.Namespace, split: ImageSplit, device: torch.device
) -> Callable[[], float]:
    runs = [start(args, split, device, seed) for seed in range(trials)]
    network = FusedNetwork([run.model for run in runs])
    groups = zip(*(endless_batches(args, split, run) for run in runs))

    def steps(count: int, epoch: int) -> None:
        train_fused_epoch(
            network,
            itertools.islice(groups, count),
            [run.optimizer for run in runs],
            [run.scheduler for run in runs],
            epochs=[epoch] * trials,
            label_smoothing=[0.0] * trials,
        )

    return timed(steps, args, device)


def timed(
    steps: Callable[[int, int], None], args: argparse.Namespace, device: torch.device
) -> Callable[[], float]:
    """One round: untimed warm-up steps, then the timed ones; returns their seconds."""

    def run() -> float:
        steps(args.warmup, 0)
        started = Mark(device)
        steps(args.steps, 1)
        return started.seconds_until(Mark(device))

    return run


def measure(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    split = random_split(args, device)
    runners = {ALONE: (1, alone_runner(args, split, device))}
    for trials in args.trials:
        runners[f"fused K={trials}"] = (trials, fused_runner(trials, args, split, device))
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, (_, run) in runners.items():
            seconds[name].append(run())
    rates = {
        name: trials * args.steps * args.batch_size / statistics.median(seconds[name])
        for name, (trials, _) in runners.items()
    }
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **machine(device),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "arms": {
            name: {
                "trials": runners[name][0],
                "images_per_second": rate,
                "vs_alone": rate / rates[ALONE],
                "seconds_per_round": seconds[name],
            }
            for name, rate in rates.items()
        },
    }


def format_results(results: dict) -> str:
    where = f"{results['gpu'] or results['cpu']} ({results['device']}, {results['torch_threads']}"
    lines = [
        f"training images/s, all trials together, on {where} threads), {results['image_size']} "
        f"px, batch {results['batch_size']} per trial, median of {results['repeats']} rounds of "
        f"{results['steps']} steps",
        f"  {'arm':12s} {'images/s':>10s} {'vs alone':>9s}",
    ]
    for name, figures in results["arms"].items():
        lines.append(
            f"  {name:12s} {figures['images_per_second']:10,.0f} {figures['vs_alone']:8.2f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = measure(args)
    print(format_results(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
