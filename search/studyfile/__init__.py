"""Study files: `studies/NAME.toml` read into frozen dataclasses (one per section, sections.py; the
whole file, study_config.py), every setting checked before anything touches a database; and the
flat settings files that `train --config` reads and `export` writes (train_file.py)."""

from search.errors import StudyFileError
from search.studyfile.load import holds_a_study, load_study_config
from search.studyfile.sections import (
    MAX_TRIALS_PER_WORKER,
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
from search.studyfile.study_config import StudyConfig, point_to_params

__all__ = [
    "MAX_TRIALS_PER_WORKER",
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
    "holds_a_study",
    "load_study_config",
    "point_to_params",
]
