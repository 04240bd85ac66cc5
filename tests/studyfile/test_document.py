"""A study's stored configuration: every shipped study file survives the trip through the storage,
and a file compared with it lists each differing setting on a line of its own."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from search.errors import StudyFileError
from search.studyfile import load_study_config
from search.studyfile.document import differences, from_document, to_document

STUDIES = sorted((Path(__file__).parents[2] / "studies").glob("*.toml"))


@pytest.mark.parametrize("path", STUDIES, ids=[path.stem for path in STUDIES])
def test_every_study_file_reads_back_from_its_stored_document(path):
    config = load_study_config(path)
    stored = json.loads(json.dumps(to_document(config)))  # as Optuna keeps a user attribute
    assert dataclasses.replace(from_document(stored, "study"), path=config.path) == config


def test_the_stored_document_leaves_the_storage_url_out():
    config = load_study_config(STUDIES[0]).with_overrides(storage="postgresql://u:secret@h/db")
    assert "secret" not in json.dumps(to_document(config))


def test_differences_name_each_setting_and_skip_what_a_machine_may_choose():
    config = load_study_config(Path(__file__).parents[2] / "studies" / "quick.toml")
    created = to_document(config.with_overrides(epochs=1, trials=4, data="/mnt/images"))
    assert differences(created, to_document(config), "studies/quick.toml") == [
        "train.epochs: 1 in the study, 6 in studies/quick.toml"
    ]


def test_a_stored_document_with_a_bad_value_is_refused_like_a_file():
    document = to_document(load_study_config(STUDIES[0]))
    document["train"]["epochs"] = 0
    with pytest.raises(StudyFileError, match=r"^study 'x': train: epochs must be positive"):
        from_document(document, "study 'x'")
