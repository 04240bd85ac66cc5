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

from search.errors import LaunchError
from trainer.naming import named

# Each local worker is a process with torch, the study's data and a network (1 GB at its peak,
# measured training at 32 px), so 256 of them need a quarter of a TB; a typo's extra zeros
# (--workers 10**12) would otherwise plan a slot for each, growing this process's memory for good.
MAX_LOCAL_WORKERS = 256
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


def check_local_workers(workers: int | None, gpus: list[int] | None, workers_per_gpu: int) -> None:
    """What can be told wrong with the local workers asked for before torch counts the GPUs
    (search.launch.local.plan_workers checks the GPUs named against them): `hpsearch run` and
    `run_study` alike, so a notebook is refused what the command line is."""
    if workers is not None and workers < 1:
        raise LaunchError(f"{named('workers')} must be at least 1, but got {workers}")
    if workers_per_gpu < 1:
        raise LaunchError(
            f"{named('workers_per_gpu')} must be at least 1, but got {workers_per_gpu}"
        )
    for keyword, count in (("workers", workers), ("workers_per_gpu", workers_per_gpu)):
        if count is not None and count > MAX_LOCAL_WORKERS:
            raise LaunchError(
                f"{named(keyword)} must be at most {MAX_LOCAL_WORKERS}, but got {count}"
            )
    if gpus is not None:
        _check_gpu_list(gpus)


def _check_gpu_list(gpus: list[int]) -> None:
    """One or more GPU numbers, each once: an empty list would mean no GPU at all, and train on
    the CPU of a machine full of them."""
    if not isinstance(gpus, list | tuple) or not all(
        isinstance(gpu, int) and not isinstance(gpu, bool) for gpu in gpus
    ):
        raise LaunchError(
            f"{named('gpus')} must be a list of GPU numbers like [0, 2], not {gpus!r}"
        )
    if not gpus:
        raise LaunchError(
            f"{named('gpus')} is empty, which would leave every GPU idle: name the GPUs to use, "
            f"like [0, 2], or leave {named('gpus')} out to use them all"
        )
    repeated = sorted({gpu for gpu in gpus if gpus.count(gpu) > 1})
    if repeated:
        raise LaunchError(
            f"{named('gpus')} names GPU {repeated[0]} twice; for several workers on each GPU, "
            f"give {named('workers_per_gpu')}"
        )


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
