"""Study files: `studies/NAME.toml` read into frozen dataclasses, every setting checked before
anything touches a database; and the flat settings files that `train --config` reads."""

from search.errors import StudyFileError
from search.studyfile.config import StudyConfig, point_to_params
from search.studyfile.load import load_study_config
from search.studyfile.settings import (
    PRUNER_KEYS,
    SAMPLER_KEYS,
    SEARCHED,
    CheckpointSettings,
    DataSettings,
    HeartbeatSettings,
    PrunerSettings,
    Range,
    SamplerSettings,
    SearchSpace,
    StudySettings,
    TrainSettings,
)

__all__ = [
    "PRUNER_KEYS",
    "SAMPLER_KEYS",
    "SEARCHED",
    "CheckpointSettings",
    "DataSettings",
    "HeartbeatSettings",
    "PrunerSettings",
    "Range",
    "SamplerSettings",
    "SearchSpace",
    "StudyConfig",
    "StudyFileError",
    "StudySettings",
    "TrainSettings",
    "load_study_config",
    "point_to_params",
]
