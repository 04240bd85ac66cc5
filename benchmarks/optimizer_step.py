"""Does torch-optimizer's Ranger cost per step against ours (trainer/ranger.py) and plain RAdam?

For each image size, ResNet-18 (trainer.model) is trained on one fixed random batch with:
torch-optimizer's Ranger (a Python loop over the parameters, about nine kernels each), ours as
the trainer builds it (RAdam with foreach=True plus Lookahead), and torch.optim.RAdam with
foreach=True, the floor. Two figures each, interleaved round by round, median over rounds:
milliseconds of `optimizer.step()` alone, and of a whole training step through
`trainer.epoch.train_one_epoch` (forward, backward, step). The last line says what ours saves.

First, the host's cost of issuing one step(), which a GPU pays whatever the tensors' sizes (its
kernels run asynchronously, the issuing does not): the same optimizers over ResNet-18's 62
parameter tensors shrunk to one element each, on the CPU, where compute is then nil; milliseconds
per step() and the PyTorch operators it dispatches on the parameters' device (on a GPU each is one
or, for a foreach operator over many tensors, a few kernel launches).

    .venv/bin/python -m benchmarks.optimizer_step --device cpu --image-sizes 32 64 --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable

import torch

from trainer import TrainConfig
from trainer.device import resolve_device
from trainer.epoch import train_one_epoch
from trainer.model import build_model
from trainer.optim import build_optimizer, build_scheduler


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="training steps timed per round")
    parser.add_argument(
        "--optimizer-steps", type=int, default=20, help="optimizer.step() calls timed per round"
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads in this process (default: torch's own)"
    )
    parser.add_argument("--rounds", type=int, default=7)
    return parser.parse_args()


def optimizers(
    parameters: list[torch.nn.Parameter],
) -> dict[str, Callable[[], torch.optim.Optimizer]]:
    return {
        "torch-optimizer": lambda: torch_optimizer_ranger(parameters),
        "ranger (ours)": lambda: build_optimizer(
            TrainConfig(optimizer="ranger", lr=8e-3), parameters
        ),
        "radam foreach": lambda: torch.optim.RAdam(parameters, lr=8e-3, foreach=True),
    }


def torch_optimizer_ranger(parameters) -> torch.optim.Optimizer:
    import torch_optimizer

    warnings.filterwarnings(
        "ignore", message="This overload of addcmul_ is deprecated", category=UserWarning
    )
    return torch_optimizer.Ranger(parameters, lr=8e-3, eps=1e-5)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, run) -> float:
    synchronize(device)
    started = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - started


def measure(
    size: int, args: argparse.Namespace, device: torch.device
) -> dict[str, dict[str, float]]:
    images = torch.randn(args.batch_size, 3, size, size, device=device)
    labels = torch.randint(0, 10, (args.batch_size,), device=device)
    runs = {}
    for name in optimizers([]):
        torch.manual_seed(0)
        model = build_model(10, device)
        optimizer = optimizers(list(model.parameters()))[name]()
        scheduler = build_scheduler(TrainConfig(), optimizer, 1000)
        # Warm-up, grads exist
        train_one_epoch(model, [(images, labels)] * 2, optimizer, scheduler, epoch=0)
        runs[name] = (model, optimizer, scheduler)
    step_ms = {name: [] for name in runs}
    train_ms = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (model, optimizer, scheduler) in runs.items():
            seconds = timed(
                device,
                lambda optimizer=optimizer: [optimizer.step() for _ in range(args.optimizer_steps)],
            )
            step_ms[name].append(1000 * seconds / args.optimizer_steps)
            seconds = timed(
                device,
                lambda model=model, optimizer=optimizer, scheduler=scheduler: train_one_epoch(
                    model, [(images, labels)] * args.steps, optimizer, scheduler, epoch=1
                ),
            )
            train_ms[name].append(1000 * seconds / args.steps)
    return {
        name: {
            "optimizer_step_ms": statistics.median(step_ms[name]),
            "train_step_ms": statistics.median(train_ms[name]),
        }
        for name in runs
    }


def issue_cost(rounds: int = 200) -> dict[str, dict[str, float]]:
    from torch.profiler import ProfilerActivity, profile

    shapes = [parameter.shape for parameter in build_model(10, torch.device("cpu")).parameters()]
    results = {}
    for name in optimizers([]):
        parameters = [torch.nn.Parameter(torch.zeros(1)) for _ in shapes]
        for parameter in parameters:
            parameter.grad = torch.ones(1)
        optimizer = optimizers(parameters)[name]()
        for _ in range(12):  # past the lazy state and RAdam's first steps
            optimizer.step()
        started = time.perf_counter()
        for _ in range(rounds):
            optimizer.step()
        milliseconds = 1000 * (time.perf_counter() - started) / rounds
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            for _ in range(6):
                optimizer.step()
        # Operators called from Python, not from inside another operator: what the step dispatches.
        # RAdam's item() calls read its step counters, which stay on the host: no kernel on a GPU.
        top = [
            event.name
            for event in profiler.events()
            if event.name.startswith("aten::")
            and (event.cpu_parent is None or not event.cpu_parent.name.startswith("aten::"))
        ]
        on_device = sum(name != "aten::item" for name in top) / 6
        results[name] = {"issue_ms": milliseconds, "device_operators": on_device}
        print(
            f"   - {name:16s} {milliseconds:9.2f} ms to issue, {on_device:.0f} device operators "
            f"and {len(top) / 6 - on_device:.0f} host reads per step() "
            f"({len(shapes)} one-element tensors)"
        )
    return results


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(
        f"{device}, batch {args.batch_size}, {torch.get_num_threads()} threads, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    issue_cost()
    print(f"{'px':>4s} {'optimizer':16s} {'step() ms':>9s} {'train step ms':>13s}")
    for size in args.image_sizes:
        results = measure(size, args, device)
        for name, result in results.items():
            print(
                f"{size:4d} {name:16s} {result['optimizer_step_ms']:9.1f} "
                f"{result['train_step_ms']:13.1f}"
            )
        reference, ours = (
            results["torch-optimizer"]["train_step_ms"],
            results["ranger (ours)"]["train_step_ms"],
        )
        print(
            f"{size:4d} ours saves {reference - ours:+.1f} ms per training step against "
            f"torch-optimizer's Ranger ({reference / ours:.2f}x the steps per second; "
            f"load {os.getloadavg()[0]:.2f})"
        )


if __name__ == "__main__":
    main()
