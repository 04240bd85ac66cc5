"""The settings of one training run, validated once, then frozen."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

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
WHOLE_NUMBERS = ("image_size", "batch_size", "epochs", "seed")
NUMBERS = ("lr", "eps", "momentum", "weight_decay", "warmup_epochs", "label_smoothing", "min_scale")

# The bounds of the numbers, each with its reason. A value outside them is a typo or a unit
# mistake, refused when the settings are read rather than met deep in torch after the data is
# decoded: as a crash, as NaN weights, or as more memory than any machine has.
MIN_IMAGE_SIZE = 16  # px: ResNet-18 halves the side five times; at 16 its last blocks see 1 x 1
# px: Imagenette's full-size photos are mostly under 500 px on the shorter side (ImageNet's), so
# a larger side only upsamples; and the decoded cache grows with its square (1024 px: 4.1 MB an
# image, 55 GB for Imagenette's 13,400), which trainer.data also checks against the memory there is.
MAX_IMAGE_SIZE = 1024
# BatchNorm needs more than one value per channel when training, and ResNet's last block is 1 x 1
# at small sizes: a batch of one image fails there (trainer.augment never makes one from >= 2)
MIN_BATCH_SIZE = 2
# Large-batch ImageNet recipes go to 64k images a step, spread over hundreds of GPUs; one worker's
# batch of more is a typo's extra zeros, met as an out-of-memory once the data is decoded (or, on a
# small data set, as one batch of everything, which trains nothing like the settings say).
MAX_BATCH_SIZE = 65_536
# A learning rate far above 1 diverges: the loss turns NaN, the run stops with "lower the learning
# rate", and a search records the trial as FAIL, which teaches its sampler (the tests make trials
# diverge with lr = 1e12). Refused is only an lr that cannot take a step at all: the optimizers step
# in float32 (largest 3.4e38) and scale lr by up to 10 (Adam's bias correction at step 1), so Adam
# and AdamW overflow from lr = 1e38 with a traceback (measured); 1e30 leaves a margin below that.
MAX_LR = 1e30
# eps stays in (0, 1): it guards a division by the root of the second moment (1e-8 by default);
# at 1 or more it outweighs the gradients' scale and the adaptive optimizer stops adapting.
# momentum stays in [0, 1]: 1, velocity that never decays, is a point of the original experiment
# (studies/factor_momentum.toml); more than 1 grows the velocity without bound.
# Weight decay is 1e-5 to 0.1 in the usual recipes (AdamW's default 0.01); above 1, a step at an
# lr of 1 takes away more than the weight itself.
MAX_WEIGHT_DECAY = 1
# ImageNet recipes train 90 to 600 epochs. Nothing breaks beyond this bound, but a run of 10**19
# epochs (a typo's extra zeros) trains for good, and its schedule, spread over all those epochs,
# never leaves the peak learning rate; 100,000 epochs of even 32 px Imagenette (about a second each
# on a GPU) are more than a day for one run.
MAX_EPOCHS = 100_000
# torch's generators take 64 bits, and a settings file written by `export` is TOML, whose
# integers are signed 64-bit: 2**63 - 1 fits both (a study's seed is smaller: NumPy's 32 bits)
MAX_SEED = 2**63 - 1


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
        for name in WHOLE_NUMBERS:
            _check_whole(name, getattr(self, name))
        for name in NUMBERS:
            _check_finite(name, getattr(self, name))
        if not self.epochs > 0:
            _refuse("epochs", self.epochs, "positive")
        if not self.lr > 0:
            _refuse("lr", self.lr, "positive")
        _check_range("image_size", self.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, " px")
        _check_range("batch_size", self.batch_size, MIN_BATCH_SIZE, MAX_BATCH_SIZE, " images")
        _check_range("epochs", self.epochs, 1, MAX_EPOCHS)
        _check_range("lr", self.lr, 0, MAX_LR)
        _check_range("seed", self.seed, 0, MAX_SEED)
        if not isinstance(self.model, str):
            raise ConfigError(
                f"model must be a model's name, but got model={self.model!r}", setting="model"
            )
        check_model_name(self.model)
        check_image_size(self.model, self.image_size)
        # A list or table from a settings file is no name: `in` would fail on it with a TypeError
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZER_SETTINGS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; choose one of: "
                + ", ".join(OPTIMIZER_SETTINGS),
                setting="optimizer",
            )
        # "false" from a JSON or YAML file is a true value to Python: SGD would use Nesterov
        if not isinstance(self.nesterov, bool):
            raise ConfigError(
                f"nesterov must be true or false, but got nesterov={self.nesterov!r}",
                setting="nesterov",
            )
        for setting in ("eps", "momentum", "nesterov"):
            self._check_applies(setting)
        if self.eps is not None and not 0 < self.eps < 1:
            _refuse("eps", self.eps, "in (0, 1)")
        if self.momentum is not None and not 0 <= self.momentum <= 1:
            _refuse("momentum", self.momentum, "in [0, 1]")
        if self.nesterov and not self.momentum:
            raise ConfigError(f"nesterov needs momentum > 0, but got momentum={self.momentum}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {self.schedule!r}; choose one of: " + ", ".join(SCHEDULES),
                setting="schedule",
            )
        if not 0 <= self.warmup_epochs <= self.epochs:
            _refuse("warmup_epochs", self.warmup_epochs, "in [0, epochs]")
        if not 0 <= self.label_smoothing < 1:
            _refuse("label_smoothing", self.label_smoothing, "in [0, 1)")
        if not 0 < self.min_scale <= 1:
            _refuse("min_scale", self.min_scale, "in (0, 1]")
        _check_range("weight_decay", self.weight_decay, 0, MAX_WEIGHT_DECAY)

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


def check_image_size_range(image_size: int, setting: str = "image_size") -> None:
    """The side any run may train or evaluate at, whatever its model (`setting` names it)."""
    _check_whole(setting, image_size)
    _check_range(setting, image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, " px")


def _check_whole(name: str, value: Any) -> None:
    # bool is an int to Python, not to a user; a YAML or JSON file may hold 1.5 or "64"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, but got {name}={value!r}", setting=name)


def _check_finite(name: str, value: Any) -> None:
    if value is None:  # eps and momentum unset
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, but got {name}={value!r}", setting=name)
    # An integer past a float's range (10**400 in a JSON file) is no setting: math.isfinite
    # would raise OverflowError on it
    if isinstance(value, int) and abs(value) > sys.float_info.max or not math.isfinite(value):
        digits = f"an integer of {len(str(abs(value)))} digits" if isinstance(value, int) else ""
        shown = digits or f"{name}={value}"
        raise ConfigError(f"{name} must be a finite number, but got {shown}", setting=name)


def _check_range(name: str, value: float, low: float, high: float | None, unit: str = "") -> None:
    if value < low:
        _refuse(name, value, f"at least {low}{unit}")
    if high is not None and value > high:
        _refuse(name, value, f"at most {high}{unit}")


def _refuse(name: str, value: Any, allowed: str) -> NoReturn:
    raise ConfigError(f"{name} must be {allowed}, but got {name}={value}", setting=name)
