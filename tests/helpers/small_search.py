"""One small real search for the report, export and browser tests: a factor study in miniature, plus
a copy under a hostile name with hand-made trials whose names try to inject HTML."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from search.launch.local import launch
from search.run.worker import WorkerOptions
from search.studyfile import load_study_config
from tests.helpers.images import make_image_folder
from tests.helpers.studies import write_study

HOSTILE_STUDY = "<script>alert(1)</script>"
HOSTILE_PARAM = "<img src=x onerror=\"document.body.setAttribute('data-pwned','param')\">"
HOSTILE_REASON = "<img src=y onerror=\"document.body.setAttribute('data-pwned','reason')\">"
EPOCHS = 2
# A factor study in miniature: two good points first (the pruner's startup trials), one that
# diverges (FAIL), two poor ones the median pruner stops. Both adam points share one eps, so eps
# is no Optuna parameter, yet the report must still name it (one value: a line, not a figure).
POINTS = """
[[points]]
optimizer = "adam"
lr = 3e-3
eps = 1e-8
[[points]]
optimizer = "sgd"
lr = 0.05
momentum = 0.9
[[points]]
optimizer = "sgd"
lr = 1e12
momentum = 0.9
[[points]]
optimizer = "sgd"
lr = 1e-5
momentum = 0.0
[[points]]
optimizer = "adam"
lr = 1e-5
eps = 1e-8
"""


class SmallSearch(NamedTuple):
    url: str
    study: str  # the real search
    hostile: str  # a copy under a hostile name, plus hand-made trials with hostile names in them
    images: Path
    cache_dir: Path


def build_small_search(root: Path) -> SmallSearch:
    """Run the small search once per test session; later callers get the same storage."""
    url = f"sqlite:///{root / 'studies.db'}"
    search = SmallSearch(url, "factors", HOSTILE_STUDY, root / "images", root / "cache")
    if (root / "built").exists():
        return search
    root.mkdir(parents=True, exist_ok=True)
    make_image_folder(search.images)
    path = write_study(
        root,
        search.images,
        name=search.study,
        trials=5,
        epochs=EPOCHS,
        points=POINTS,
        pruner='kind = "median"\nwarmup_epochs = 0\nstartup_trials = 2',
    )
    launch(
        load_study_config(path),
        WorkerOptions(
            url, "cpu", search.cache_dir, progress=False, checkpoint_dir=root / "checkpoints"
        ),
    )
    optuna.copy_study(
        from_study_name=search.study, from_storage=url, to_storage=url, to_study_name=HOSTILE_STUDY
    )
    _add_hostile_trials(optuna.load_study(study_name=HOSTILE_STUDY, storage=url))
    (root / "built").touch()
    return search


def _add_hostile_trials(study: optuna.Study) -> None:
    study.add_trial(
        create_trial(
            params={"optimizer": "adam", "lr": 0.02, HOSTILE_PARAM: 0.5},
            distributions={
                "optimizer": CategoricalDistribution(["adam", "sgd"]),
                "lr": FloatDistribution(1e-5, 1.0, log=True),
                HOSTILE_PARAM: FloatDistribution(0, 1),
            },
            value=0.5,
            intermediate_values={1: 0.4, 2: 0.5},
        )
    )
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            user_attrs={
                "fail_reason": HOSTILE_REASON,
                "epochs_run": 0,
                "config": {"optimizer": "sgd", "lr": 2.0, "momentum": 0.5, "epochs": EPOCHS},
            },
        )
    )
