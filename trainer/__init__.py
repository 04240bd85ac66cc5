"""Training a torchvision classifier (ResNet-18 unless told otherwise) on Imagenette or any image
folder. Knows nothing of Optuna.

Importing the package loads no torch: a command that only reads a study (status, report, export,
the dashboard) checks settings against `TrainConfig` and its errors, and nothing more. What trains
lives in its own module, imported where it is used: `trainer.loop` (`train`), `trainer.epoch`
(`evaluate`, `EpochMetrics`), `trainer.rounds` (several runs' epochs at once, fused by
`trainer.fused`), `trainer.data` (`ImageData`, `load_image_data`), `trainer.device`
(`resolve_device`), `trainer.checkpoint` (`CheckpointPolicy`), `trainer.weights`.
"""

from trainer.config import OPTIMIZER_SETTINGS, SCHEDULES, TrainConfig
from trainer.errors import (
    ConfigError,
    DataError,
    NonFiniteLossError,
    PauseAfterEpoch,
    TrainerError,
    TrainingStopped,
)

__all__ = [
    "ConfigError",
    "DataError",
    "NonFiniteLossError",
    "OPTIMIZER_SETTINGS",
    "PauseAfterEpoch",
    "SCHEDULES",
    "TrainConfig",
    "TrainerError",
    "TrainingStopped",
]
