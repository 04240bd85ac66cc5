"""A study whose creator died while recording it is finished by the next run of its study file."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

import search.study.opening
from search import attrs
from search.run.options import WorkerOptions
from search.run.worker import run_worker
from search.studyfile import load_study_config
from search.studyfile.document import to_document
from tests.helpers.studies import write_study

POINTS = """
[[points]]
optimizer = "sgd"
lr = 0.05
momentum = 0.9
[[points]]
optimizer = "adam"
lr = 3e-3
eps = 1e-8
[[points]]
optimizer = "sgd"
lr = 0.01
momentum = 0.0
"""


def test_a_study_whose_creator_died_mid_creation_is_finished_and_runs_each_point_once(
    tmp_path, image_folder, cache_dir, monkeypatch
):
    """Killed after its settings and first point were recorded, before its budget, data and
    identity: the next run waited for it, then ran it as a study of another hpsearch, with no
    identity and two points never queued."""
    path = write_study(tmp_path, image_folder, trials=3, epochs=1, points=POINTS)
    config = load_study_config(path)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    # What create_study had recorded when its process died: the first steps, in its order
    dying = optuna.create_study(study_name=config.study.name, storage=url, direction="maximize")
    dying.set_metric_names([attrs.METRIC])
    dying.set_user_attr(attrs.STUDY_CONFIG, to_document(config))
    first = {key: value for key, value in config.points[0].items() if value is not None}
    dying.enqueue_trial(first, user_attrs={attrs.QUEUED_AS: "points[0]"})
    monkeypatch.setattr(search.study.opening, "CREATION_WAIT_SECONDS", 0.5)

    options = WorkerOptions(url, "cpu", cache_dir, progress=False)
    assert run_worker(config, options, create=True).finished == 3
    study = optuna.load_study(study_name=config.study.name, storage=url)
    identity = study.user_attrs.get(attrs.STUDY_ID)
    assert isinstance(identity, str) and len(identity) == 32
    assert study.user_attrs[attrs.BUDGET] == 3 and attrs.DATA_FINGERPRINT in study.user_attrs
    queued_as = sorted(trial.user_attrs[attrs.QUEUED_AS] for trial in study.trials)
    assert queued_as == ["points[0]", "points[1]", "points[2]"]
    assert all(trial.state == TrialState.COMPLETE for trial in study.trials)
    # A second run finds it whole: the same identity, nothing queued again
    assert run_worker(config, options, create=True).finished == 0
    again = optuna.load_study(study_name=config.study.name, storage=url)
    assert again.user_attrs[attrs.STUDY_ID] == identity and len(again.trials) == 3
