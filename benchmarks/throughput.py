"""Training images per second of ResNet-18: the pipeline a user would write against ours.

(a) baseline: torchvision ImageFolder + PIL, RandomResizedCrop / RandomHorizontalFlip / ToTensor /
    Normalize per image in a DataLoader with one worker per core (pinned memory on CUDA), float32,
    the plain torchvision model;
(b) ours: the trainer's uint8 cache kept on the device, `trainer.augment.train_batches` (crops and
    flips per batch there) and `trainer.epoch.train_one_epoch` (channels_last + bf16
    autocast on CUDA).

With --compile, (c) ours through torch.compile as `hpsearch run --compile` does it, compiled once
before the repeats (the compile seconds are reported apart).

Both train the same model with the same optimizer, batch, image size and number of steps, in one
process, interleaved (baseline, ours, baseline, ours, ...); warm-up steps are not timed, CUDA time
is taken with events after a synchronize, and each figure is the median of the repeats. Loading
ours (decoding the cache, or reading it) is reported apart and not timed.

    .venv/bin/python benchmarks/throughput.py --device cpu \
        --data ../shared/data/imagenette2-128.tar.gz \
        --image-size 64 --batch-size 64 --steps 40 --repeats 5 --json throughput.json

--data is a folder with train/ and val/ or a .tar.gz of one; an archive is extracted once, where
the trainer extracts it ($HPSEARCH_DATA_ROOT), and ImageFolder reads that folder.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import itertools
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch.utils.data import DataLoader, RandomSampler
from torchvision import transforms
from torchvision.datasets import ImageFolder

from trainer import TrainConfig
from trainer.augment import IMAGENET_MEAN, IMAGENET_STD, steps_per_epoch, train_batches
from trainer.data import ImageSplit, load_image_data
from trainer.device import resolve_device
from trainer.epoch import train_one_epoch
from trainer.model import build_model
from trainer.optim import build_optimizer, build_scheduler
from trainer.sources import resolve_data_dir
from trainer.timing import Mark

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument(
        "--data", required=True, help="folder with train/ and val/, or a .tar.gz of one"
    )
    parser.add_argument("--image-size", type=int, default=128, help="px")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--optimizer", default="sgd", help="the same for both pipelines (default sgd, momentum 0.9)"
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads in this process (default: torch's own)"
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="the trainer's image cache (default: its own)"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time ours through torch.compile (compiled once, before the repeats)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser.parse_args()


def train_config(args: argparse.Namespace) -> TrainConfig:
    sgd = args.optimizer == "sgd"
    return TrainConfig(
        image_size=args.image_size,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=0.1 if sgd else 1e-3,
        momentum=0.9 if sgd else None,
    )


def baseline_runner(
    args, config: TrainConfig, folder: Path, device: torch.device, num_classes: int
) -> Callable[[], float]:
    transform = transforms.Compose(
        [
            transforms.RandomResizedCrop(args.image_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    dataset = ImageFolder(str(folder / "train"), transform=transform)
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes).to(device)
    optimizer = build_optimizer(config, model.parameters())
    scheduler = build_scheduler(config, optimizer, steps_per_epoch(len(dataset), config.batch_size))
    # One sampler for warm-up and timed steps, so the timed steps never wait for workers to restart.
    sampler = RandomSampler(dataset, num_samples=(args.warmup + args.steps) * args.batch_size)

    def run() -> float:
        loader = DataLoader(
            dataset,
            batch_size=args.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=os.cpu_count() or 1,
            pin_memory=device.type == "cuda",
        )
        batches = iter(loader)
        baseline_steps(model, batches, optimizer, scheduler, device, args.warmup)
        started = Mark(device)
        baseline_steps(model, batches, optimizer, scheduler, device, args.steps)
        seconds = started.seconds_until(Mark(device))
        del batches, loader  # its workers stop here, so they take no CPU from the next pipeline
        gc.collect()
        return seconds

    return run


def baseline_steps(
    model: torch.nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    steps: int,
) -> None:
    model.train()
    for images, labels in itertools.islice(batches, steps):
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()


def ours_runner(
    args,
    config: TrainConfig,
    train: ImageSplit,
    device: torch.device,
    num_classes: int,
    compile: bool = False,
) -> tuple[Callable[[], float], float | None]:
    """The runner, and for `compile` the seconds its first steps took (compilation included)."""
    model = build_model(num_classes, device)
    network = torch.compile(model) if compile else model
    optimizer = build_optimizer(config, model.parameters())
    scheduler = build_scheduler(config, optimizer, steps_per_epoch(len(train), config.batch_size))
    generator = torch.Generator(device=device).manual_seed(0)
    # Epoch after epoch, so that more steps than one epoch holds run on.
    batches = itertools.chain.from_iterable(
        train_batches(
            train,
            batch_size=config.batch_size,
            image_size=config.image_size,
            min_scale=config.min_scale,
            generator=generator,
        )
        for _ in itertools.count()
    )

    def run() -> float:
        train_one_epoch(
            network, itertools.islice(batches, args.warmup), optimizer, scheduler, epoch=0
        )
        started = Mark(device)
        train_one_epoch(
            network, itertools.islice(batches, args.steps), optimizer, scheduler, epoch=1
        )
        return started.seconds_until(Mark(device))

    if not compile:
        return run, None
    started = Mark(device)
    train_one_epoch(network, itertools.islice(batches, 2), optimizer, scheduler, epoch=0)
    return run, started.seconds_until(Mark(device))


def machine(device: torch.device) -> dict:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    return {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
    }


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    config = train_config(args)
    load_before = os.getloadavg()
    started = time.perf_counter()
    data = load_image_data(args.data, args.image_size, cache_dir=args.cache_dir, progress=False)
    train = data.to(device).train
    load_seconds = time.perf_counter() - started
    folder = resolve_data_dir(args.data, progress=False)
    runners = {"baseline": baseline_runner(args, config, folder, device, len(data.classes))}
    runners["ours"], _ = ours_runner(args, config, train, device, len(data.classes))
    compile_seconds = None
    if args.compile:
        runners["ours compiled"], compile_seconds = ours_runner(
            args, config, train, device, len(data.classes), compile=True
        )
        print(
            f"compiled ours in {compile_seconds:.1f} s (first two steps, compilation included)",
            flush=True,
        )
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for repeat in range(args.repeats):
        for name, run in runners.items():
            seconds[name].append(run())
            rate = args.steps * args.batch_size / seconds[name][-1]
            print(
                f"repeat {repeat + 1}/{args.repeats} {name:13s} {rate:8.0f} images/s  "
                f"(load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    epoch_images = steps_per_epoch(len(train), args.batch_size) * args.batch_size
    results = {}
    for name, times in seconds.items():
        rates = [args.steps * args.batch_size / value for value in times]
        median = statistics.median(rates)
        results[name] = {
            "images_per_second": median,
            "epoch_seconds": epoch_images / median,
            "images_per_second_each_repeat": rates,
        }
    baseline_rate = results["baseline"]["images_per_second"]
    ratio = results["ours"]["images_per_second"] / baseline_rate
    compiled_ratio = (
        results["ours compiled"]["images_per_second"] / baseline_rate if args.compile else None
    )
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **machine(device),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "optimizer": args.optimizer,
        "train_images": len(train),
        "dataloader_workers": os.cpu_count(),
        "ours_load_seconds": load_seconds,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "compile_seconds": compile_seconds,
        **results,
        "ratio_ours_to_baseline": ratio,
        "ratio_ours_compiled_to_baseline": compiled_ratio,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'pipeline':14s} {'images/s':>10s} {'epoch s':>9s}  each repeat (images/s)")
    for name, result in results.items():
        each = " ".join(f"{rate:.0f}" for rate in result["images_per_second_each_repeat"])
        print(
            f"{name:14s} {result['images_per_second']:10.0f} {result['epoch_seconds']:9.1f}  {each}"
        )
    print(
        f"{device} {report['gpu'] or report['cpu']}, {args.image_size} px, "
        f"batch {args.batch_size}, {args.steps} steps x {args.repeats}, "
        f"{torch.get_num_threads()} torch threads, "
        f"load {load_before[0]:.2f} -> {report['loadavg_after'][0]:.2f}"
    )
    if compiled_ratio is not None:
        print(
            f"ours compiled/baseline images/s: {compiled_ratio:.2f}x (compiling took "
            f"{compile_seconds:.0f} s)"
        )
    print(f"ours/baseline images/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
