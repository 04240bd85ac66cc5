"""The settings of one training run, validated once, then frozen."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainer.errors import ConfigError
from trainer.model_names import DEFAULT_MODEL, check_image_size, check_model_name

# Which optional settings each optimizer uses. A setting that an optimizer does not use is an
# error rather than silently ignored, so a search never records a parameter that did nothing.
OPTIMIZER_SETTINGS: dict[str, frozenset[str]] = {
    "sgd": frozenset({"momentum", "nesterov"}),
    "adam": frozenset({"eps"}),
    "adamw": frozenset({"eps"}),
    "radam": frozenset({"eps"}),
    "nadam": frozenset({"eps"}),
    "ranger": frozenset({"eps"}),
}
SCHEDULES = ("constant", "cosine", "onecycle", "flat_cosine")


@dataclass(frozen=True)
class TrainConfig:
    image_size: int = 128  # px, side of the square the network sees
    batch_size: int = 64  # images per optimizer step
    epochs: int = 20
    model: str = DEFAULT_MODEL  # a torchvision classification model by name, built from scratch
    optimizer: str = "ranger"
    lr: float = 8e-3  # peak learning rate, per batch (no scaling with batch size)
    eps: float | None = None  # adaptive optimizers only; None keeps the optimizer's default
    momentum: float | None = None  # sgd only; None is PyTorch's default, 0
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0
    schedule: str = "cosine"  # one of SCHEDULES, stepped per batch
    warmup_epochs: float = 0.0  # linear warm-up from 0, before the schedule
    label_smoothing: float = 0.0
    min_scale: float = 0.35  # smallest area fraction random-resized-crop keeps
    seed: int = 0

    def __post_init__(self) -> None:
        _check_positive(self, "image_size", "batch_size", "epochs", "lr")
        if self.image_size < 16:
            raise ConfigError(
                f"image_size must be at least 16 px, but got image_size={self.image_size}"
            )
        if not isinstance(self.model, str):
            raise ConfigError(f"model must be a model's name, but got model={self.model!r}")
        check_model_name(self.model)
        check_image_size(self.model, self.image_size)
        if self.optimizer not in OPTIMIZER_SETTINGS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; choose one of: "
                + ", ".join(OPTIMIZER_SETTINGS)
            )
        for setting in ("eps", "momentum", "nesterov"):
            self._check_applies(setting)
        if self.eps is not None and not self.eps > 0:
            raise ConfigError(f"eps must be positive, but got eps={self.eps}")
        if self.momentum is not None and not 0 <= self.momentum <= 1:
            raise ConfigError(f"momentum must be in [0, 1], but got momentum={self.momentum}")
        if self.nesterov and not self.momentum:
            raise ConfigError(f"nesterov needs momentum > 0, but got momentum={self.momentum}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {self.schedule!r}; choose one of: " + ", ".join(SCHEDULES)
            )
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError(
                f"warmup_epochs must be in [0, epochs], but got warmup_epochs={self.warmup_epochs}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(
                f"label_smoothing must be in [0, 1), but got label_smoothing={self.label_smoothing}"
            )
        if not 0 < self.min_scale <= 1:
            raise ConfigError(f"min_scale must be in (0, 1], but got min_scale={self.min_scale}")
        if self.weight_decay < 0:
            raise ConfigError(
                f"weight_decay must be >= 0, but got weight_decay={self.weight_decay}"
            )

    def _check_applies(self, setting: str) -> None:
        value = getattr(self, setting)
        unset = value is None or (setting == "nesterov" and value is False)
        if unset or setting in OPTIMIZER_SETTINGS[self.optimizer]:
            return
        users = [name for name, used in OPTIMIZER_SETTINGS.items() if setting in used]
        raise ConfigError(
            f"{setting}={value} does not apply to optimizer {self.optimizer!r}; "
            f"it applies only to: {', '.join(users)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, where: str = "config") -> TrainConfig:
        """Build from plain data (a TOML table, a checkpoint), naming any unknown key."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown training setting {unknown[0]!r} in {where}; "
                f"known settings: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _check_positive(config: TrainConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, but got {name}={value!r}")
        if not value > 0:
            raise ConfigError(f"{name} must be positive, but got {name}={value}")
