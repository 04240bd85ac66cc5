"""The images a study trains on, and the fingerprint every worker's copy must match."""

from __future__ import annotations

from pathlib import Path

from search.studyfile import StudyConfig
from trainer.data import ImageData, load_image_data


def load_study_data(
    config: StudyConfig, cache_dir: Path | None = None, *, progress: bool = True
) -> ImageData:
    """The images a study trains on: decoded once, capped per class, with the search's val split."""
    settings = config.data
    data = load_image_data(
        settings.source, settings.image_size, cache_dir=cache_dir, progress=progress
    )
    if settings.per_class is not None:
        data = data.cap_per_class(settings.per_class)
    if settings.validation_fraction is not None:
        data = data.holdout(settings.validation_fraction, seed=config.study.seed)
    return data


def fingerprint(config: StudyConfig, data: ImageData) -> dict:
    return {
        **data.fingerprint(),
        "image_size": config.data.image_size,
        "per_class": config.data.per_class,
        "validation_fraction": config.data.validation_fraction,
    }
