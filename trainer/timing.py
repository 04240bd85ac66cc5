"""Timing device work: CUDA events on a GPU, the wall clock elsewhere."""

from __future__ import annotations

import time

import torch


class Mark:
    """A point in time on `device`'s own clock.

    On CUDA it is an event recorded in the stream, so marking never makes the host wait for the GPU;
    only reading a duration waits, for the later mark. On an MPS device marking synchronises first,
    since the host clock would otherwise run ahead of queued work.
    """

    def __init__(self, device: torch.device):
        self.event = None
        if device.type == "cuda":
            self.event = torch.cuda.Event(enable_timing=True)
            self.event.record()
        elif device.type == "mps":
            torch.mps.synchronize()
        self.time = time.perf_counter()

    def seconds_until(self, later: Mark) -> float:
        if self.event is None or later.event is None:
            return later.time - self.time
        later.event.synchronize()
        return self.event.elapsed_time(later.event) / 1000
