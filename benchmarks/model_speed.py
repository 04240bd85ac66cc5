"""What each model costs: training images per second of torchvision models through our step.

Each model (`trainer.model.build_model`, from scratch, channels_last + bf16 autocast on CUDA) trains
with Ranger on the same random uint8 images kept on the device, cropped and flipped there by
`trainer.augment.train_batches`, through `trainer.epoch.train_one_epoch`: exactly a search trial's
step, without the data set. The models run in one process, interleaved round by round (resnet18,
resnet34, resnet50, resnet18, ...), so a machine's drift touches each alike; warm-up steps are not
timed, CUDA time is taken with events, and each figure is the median of the rounds. The first
model is the baseline the others are compared with.

    python -m benchmarks.model_speed --device cuda --image-size 128 --batch-size 256 --steps 50 \
        --json models.json
    python -m benchmarks.model_speed --device cpu --image-size 32 --batch-size 32 --steps 5 \
        --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.throughput import machine
from trainer import TrainConfig
from trainer.augment import train_batches
from trainer.data import ImageSplit
from trainer.device import resolve_device
from trainer.epoch import train_one_epoch
from trainer.errors import ConfigError
from trainer.model import build_model, check_model_name
from trainer.optim import build_optimizer, build_scheduler
from trainer.timing import Mark

DEFAULT_MODELS = "resnet18,resnet34,resnet50"  # the original experiment's three
NUM_CLASSES = 10  # Imagenette's
SPLIT_BATCHES = 4  # distinct batches of random images the steps cycle through


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated; first: baseline")
    parser.add_argument("--image-size", type=int, default=128, help="px")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50, help="timed steps per model and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--threads", type=int, help="torch threads (1 on a shared CPU)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    for name in args.models:  # an unknown name fails here, in one line, before any model is built
        try:
            check_model_name(name)
        except ConfigError as error:
            parser.error(str(error))
    return args


def model_runner(
    name: str, args: argparse.Namespace, split: ImageSplit, device: torch.device
) -> tuple[Callable[[], float], int]:
    """A function that runs one timed round of `name`, returning its seconds; and its size."""
    config = TrainConfig(
        model=name,
        optimizer="ranger",
        lr=8e-3,
        eps=1e-6,
        image_size=args.image_size,
        batch_size=args.batch_size,
    )
    model = build_model(NUM_CLASSES, device, name)
    optimizer = build_optimizer(config, model.parameters())
    scheduler = build_scheduler(config, optimizer, args.steps + args.warmup)
    generator = torch.Generator(device=device).manual_seed(0)
    batches = itertools.chain.from_iterable(  # epoch after epoch of the small split
        train_batches(
            split,
            batch_size=args.batch_size,
            image_size=args.image_size,
            min_scale=config.min_scale,
            generator=generator,
        )
        for _ in itertools.count()
    )

    def run() -> float:
        train_one_epoch(
            model, itertools.islice(batches, args.warmup), optimizer, scheduler, epoch=0
        )
        started = Mark(device)
        train_one_epoch(model, itertools.islice(batches, args.steps), optimizer, scheduler, epoch=1)
        return started.seconds_until(Mark(device))

    return run, sum(parameter.numel() for parameter in model.parameters())


def random_split(args: argparse.Namespace, device: torch.device) -> ImageSplit:
    count = args.batch_size * SPLIT_BATCHES
    # Stored a little larger than the side the network sees, as a decoded data set's cache is
    stored = args.image_size + args.image_size // 4
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (count, 3, stored, stored), dtype=torch.uint8, generator=generator
    )
    labels = torch.randint(0, NUM_CLASSES, (count,), generator=generator)
    return ImageSplit(images.to(device), labels.to(device))


def measure(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    split = random_split(args, device)
    runners = {name: model_runner(name, args, split, device) for name in args.models}
    seconds: dict[str, list[float]] = {name: [] for name in args.models}
    for _ in range(args.repeats):
        for name, (run, _parameters) in runners.items():
            seconds[name].append(run())
    images = args.steps * args.batch_size
    baseline = statistics.median(seconds[args.models[0]])
    results = {
        name: {
            "images_per_second": images / statistics.median(rounds),
            "seconds_per_round": rounds,
            "parameters_millions": runners[name][1] / 1e6,
            "cost_vs_baseline": statistics.median(rounds) / baseline,
        }
        for name, rounds in seconds.items()
    }
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **machine(device),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "baseline": args.models[0],
        "models": results,
    }


def format_results(results: dict) -> str:
    where = f"{results['gpu'] or results['cpu']} ({results['device']}, {results['torch_threads']}"
    lines = [
        f"training images/s per model on {where} threads), {results['image_size']} px, batch "
        f"{results['batch_size']}, median of {results['repeats']} rounds of "
        f"{results['steps']} steps",
        f"  {'model':16s} {'params (M)':>10s} {'images/s':>10s} "
        f"{'time vs ' + results['baseline']:>18s}",
    ]
    for name, figures in results["models"].items():
        lines.append(
            f"  {name:16s} {figures['parameters_millions']:10.1f} "
            f"{figures['images_per_second']:10,.0f} {figures['cost_vs_baseline']:17.2f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = measure(args)
    print(format_results(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
