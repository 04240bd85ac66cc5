"""The images a study trains on, and the fingerprint every worker's copy must match."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from search.errors import StudyFileError
from search.studyfile import StudyConfig
from trainer.data import ImageData, check_holdout, load_image_data
from trainer.errors import DataError
from trainer.listing import Listing


def load_study_data(
    config: StudyConfig, cache_dir: Path | None = None, *, progress: bool = True
) -> ImageData:
    """The images a study trains on: decoded once, capped per class, with the search's val split."""
    settings = config.data
    data = load_image_data(
        settings.source,
        settings.image_size,
        cache_dir=cache_dir,
        progress=progress,
        check=lambda listing: _check_holdout(config, listing),
    )
    if settings.per_class is not None:
        data = data.cap_per_class(settings.per_class)
    if settings.validation_fraction is not None:
        data = data.holdout(settings.validation_fraction, seed=config.study.seed)
    return data


def _check_holdout(config: StudyConfig, listing: Listing) -> None:
    """The holdout the study file asks for must leave each class images to train on: known from
    the folder's listing, so a fraction too large is refused before anything is decoded."""
    fraction, cap = config.data.validation_fraction, config.data.per_class
    if fraction is None:
        return
    found = Counter(label for _, label in listing.train)
    counts = {
        name: min(found[label], cap) if cap is not None else found[label]
        for label, name in enumerate(listing.classes)
    }
    try:
        check_holdout(counts, fraction)
    except DataError as error:
        # Counted after data.per_class's cap: the folder may hold many more than the error says
        capped = f" (data.per_class = {cap} caps each class)" if cap is not None else ""
        raise StudyFileError(f"{config.path}: data.validation_fraction: {error}{capped}") from None


def fingerprint(config: StudyConfig, data: ImageData) -> dict:
    return {
        **data.fingerprint(),
        "image_size": config.data.image_size,
        "per_class": config.data.per_class,
        "validation_fraction": config.data.validation_fraction,
    }
