"""Where workers start: local processes on this machine's GPUs or cores."""

from search.launch.local import WorkerSlot, launch, plan_workers

__all__ = ["WorkerSlot", "launch", "plan_workers"]
