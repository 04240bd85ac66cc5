"""Training ResNet-18 on Imagenette or any image folder. Knows nothing of Optuna."""

from trainer.checkpoint import CheckpointPolicy
from trainer.config import OPTIMIZER_SETTINGS, SCHEDULES, TrainConfig
from trainer.data import ImageData, load_image_data
from trainer.device import resolve_device
from trainer.errors import (
    ConfigError,
    DataError,
    NonFiniteLossError,
    PauseAfterEpoch,
    TrainerError,
    TrainingStopped,
)
from trainer.loop import EpochMetrics, TrainResult, evaluate, train, train_one_epoch

__all__ = [
    "CheckpointPolicy",
    "ConfigError",
    "DataError",
    "EpochMetrics",
    "ImageData",
    "NonFiniteLossError",
    "OPTIMIZER_SETTINGS",
    "PauseAfterEpoch",
    "SCHEDULES",
    "TrainConfig",
    "TrainResult",
    "TrainerError",
    "TrainingStopped",
    "evaluate",
    "load_image_data",
    "resolve_device",
    "train",
    "train_one_epoch",
]
