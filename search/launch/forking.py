"""How `hpsearch run` starts its local worker processes: forked from one server process
(search.launch.worker_server) that imported torch once, rather than spawned to import it each.

This module imports no torch, so that a run can start the server before importing torch itself:
the two imports (seconds of CPU each) then overlap instead of following one another.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
from multiprocessing.context import ForkServerContext

WORKER_SERVER = "search.launch.worker_server"  # what the server imports once
NVIDIA_GPUS = "/proc/driver/nvidia/gpus"  # a folder per GPU while NVIDIA's driver is loaded


def start_worker_server() -> ForkServerContext:
    """The context that forks workers from the server, which is started now unless it runs
    already (it lives as long as this process). Fork from this process itself would copy its CUDA
    and database state, which the server never has."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([WORKER_SERVER])
    multiprocessing.forkserver.ensure_running()
    return context


def will_fork_workers(workers: int | None, device: str) -> bool:
    """Whether a run will start worker processes, as far as can be told before torch is imported
    (search.launch.local.launch decides with torch): more than one worker, or a GPU to train on
    (--gpus without one is refused). A wrong guess costs an idle server process, no more."""
    if workers is not None and workers > 1:
        return True
    return device in ("auto", "cuda") and _nvidia_gpu_visible()


def _nvidia_gpu_visible() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False  # hidden from CUDA, as torch.cuda.is_available() will find
    try:
        return any(os.scandir(NVIDIA_GPUS))
    except OSError:  # no driver: a CPU-only machine
        return False
