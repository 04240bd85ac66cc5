"""How many CPUs this process may run on: under SLURM, taskset or a cgroup cpuset that is fewer
than the machine has, and a process that starts a worker per core of the machine crowds the few
it was given. Torch-free, for the launcher as well as the trainer."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs in this process's affinity mask (at least 1); the machine's count where the system
    keeps no mask (macOS, Windows). Python 3.13's os.process_cpu_count, on the 3.11 we support."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
