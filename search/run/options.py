"""How a worker runs, apart from what it runs (the study): the settings of a command's flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# A worker on a cluster starts beside its database, which may take minutes to accept connections
WORKER_WAIT_FOR_STORAGE_SECONDS = 300.0


@dataclass(frozen=True)
class WorkerOptions:
    storage_url: str
    device: str = "auto"
    cache_dir: Path | None = None
    progress: bool = True  # progress bars, for a terminal
    log_format: str | None = None  # "text" or "json": a line per event, for a log (search.run.log)
    checkpoint_dir: Path | None = None  # overrides the study file's [checkpoint] dir
    compile: bool = False  # torch.compile the network once, on this worker's first trial
    wait_for_storage: float = 0  # seconds to wait for a database server that is still starting
    trials_per_worker: int | None = None  # overrides the study file's [study] trials_per_worker
