"""Would bf16 autocast speed up training on a CPU? ResNet-18 training steps on the CPU in float32
(what trainer.epoch does there today) against bf16 autocast, with and without channels_last.

One fixed random batch per image size; the variants take turns round by round and the median
over rounds is reported. Worth it only on CPUs with native bf16 (AVX512-BF16 or AMX), which
`torch.ops.mkldnn._is_mkldnn_bf16_supported()` reports.

    .venv/bin/python -m benchmarks.cpu_precision --image-sizes 32 64 --threads 1 --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torchvision.models import resnet18

VARIANTS = {
    "float32": (False, False),
    "bf16 autocast": (True, False),
    "bf16 + channels_last": (True, True),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="steps timed per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    return parser.parse_args()


def step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    bf16: bool,
    channels_last: bool,
) -> None:
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure(size: int, args: argparse.Namespace) -> dict[str, float]:
    images, labels = (
        torch.randn(args.batch_size, 3, size, size),
        torch.randint(0, 10, (args.batch_size,)),
    )
    runs = {}
    for name, (bf16, channels_last) in VARIANTS.items():
        torch.manual_seed(0)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = resnet18(num_classes=10).to(memory_format=memory_format)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(2):  # warm-up: oneDNN builds its kernels on first use
            step(model, optimizer, images, labels, bf16, channels_last)
        runs[name] = (model, optimizer, bf16, channels_last)
    ms = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (model, optimizer, bf16, channels_last) in runs.items():
            started = time.perf_counter()
            for _ in range(args.steps):
                step(model, optimizer, images, labels, bf16, channels_last)
            ms[name].append(1000 * (time.perf_counter() - started) / args.steps)
    return {name: statistics.median(values) for name, values in ms.items()}


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"cpu bf16 supported: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}, "
        f"{torch.get_num_threads()} threads, batch {args.batch_size}, load {os.getloadavg()[0]:.2f}"
    )
    for size in args.image_sizes:
        results = measure(size, args)
        baseline = results["float32"]
        for name, value in results.items():
            print(
                f"{size:4d} px {name:22s} {value:7.0f} ms/step  "
                f"{args.batch_size * 1000 / value:6.0f} images/s  {baseline / value:5.2f}x"
            )
        print(f"     load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
