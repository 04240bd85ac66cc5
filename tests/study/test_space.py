"""What each trial of a study trains with, as `suggest` reads it from the study's queue."""

from __future__ import annotations

from search.study.opening import create_study
from search.study.promotion import ask_new
from search.study.space import suggest
from search.study.storage import open_storage
from search.studyfile.load import load_study_config

POINTS = """
[study]
name = "defaults"

[data]
source = "{data}"

[[points]]
optimizer = "adam"
lr = 1e-3
eps = 1e-6

[[points]]
optimizer = "adam"
lr = 1e-3

[[points]]
optimizer = "sgd"
lr = 0.1
momentum = 0.9

[[points]]
optimizer = "sgd"
lr = 0.1
"""


def test_a_point_that_leaves_eps_or_momentum_out_trains_with_the_default(tmp_path, image_folder):
    # Eps 1e-6 against Adam's default: the second point used to train with 1e-6 too
    study_file = tmp_path / "defaults.toml"
    study_file.write_text(POINTS.format(data=image_folder))
    config = load_study_config(study_file)
    study = create_study(config, open_storage(f"sqlite:///{tmp_path / 's.db'}"), {})
    assert study is not None
    trained = [suggest(ask_new(study), config) for _ in config.points]
    assert [(train.eps, train.momentum) for train in trained] == [
        (1e-6, None),
        (None, None),
        (None, 0.9),
        (None, None),
    ]
