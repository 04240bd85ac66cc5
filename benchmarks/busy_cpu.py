"""How much slower does a CPU search get when another job shares the cores, and does OpenMP's
waiting policy decide it? ResNet-18 training steps on the CPU, each arm in a fresh process (the
policy is read once, when torch loads OpenMP), quiet and with busy processes beside it.

By default an OpenMP thread that reaches a barrier spins for a while before it sleeps; with every
core also running another job, the spinning threads take the time slices that the threads they
wait for need. The arms: OpenMP's default, a short spin (GOMP_SPINCOUNT), and no spin at all
(OMP_WAIT_POLICY=PASSIVE). Arms take turns round by round; the median over rounds is reported.

    .venv/bin/python -m benchmarks.busy_cpu --busy 2 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

ARMS = {
    "OpenMP default": {},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}

# One arm's measurement, run in a fresh interpreter: seconds for `steps` training steps.
STEPS = """
import sys, time, torch
import torch.nn.functional as F
from torchvision.models import resnet18
size, batch, steps = (int(value) for value in sys.argv[1:4])
torch.manual_seed(0)
model = resnet18(num_classes=10)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
images, labels = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
def step():
    loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
step()  # warm-up: allocations, one-time kernels
started = time.perf_counter()
for _ in range(steps):
    step()
print(time.perf_counter() - started)
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 1, help="busy processes")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="steps timed per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the medians here")
    return parser.parse_args()


@contextmanager
def busy(processes: int) -> Iterator[None]:
    """Another job on every core: processes that only spin."""
    spinning = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)
    ]
    try:
        yield
    finally:
        for process in spinning:
            process.kill()
            process.wait()


def seconds(arm: dict[str, str], args: argparse.Namespace) -> float:
    sizes = [str(args.image_size), str(args.batch_size), str(args.steps)]
    done = subprocess.run(
        [sys.executable, "-c", STEPS, *sizes],
        env={**os.environ, **arm},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    medians: dict[str, dict[str, float]] = {}
    for condition, processes in (("quiet", 0), (f"{args.busy} busy", args.busy)):
        times: dict[str, list[float]] = {name: [] for name in ARMS}
        with busy(processes):
            for _ in range(args.rounds):
                for name, arm in ARMS.items():
                    times[name].append(seconds(arm, args))
        medians[condition] = {name: statistics.median(runs) for name, runs in times.items()}
        for name, runs in times.items():
            images_per_second = args.steps * args.batch_size / medians[condition][name]
            rounds = " ".join(f"{run:.1f}" for run in runs)
            print(f"{condition:>8} | {name:<24} | {images_per_second:6.0f} images/s | s: {rounds}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"settings": vars(args), "seconds": medians}, out, indent=1)


if __name__ == "__main__":
    main()
