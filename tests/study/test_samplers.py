"""Every sampler and pruner kind a study file may name builds the Optuna object it stands for,
and each process seeds its sampler apart from every other's."""

from __future__ import annotations

import optuna
import pytest

from search.study.opening import settle_sampler_seed, with_sampler
from search.study.promotion import AshaPruner
from search.study.samplers import PRUNERS, SAMPLERS, build_pruner, build_sampler
from search.study.space import suggest
from search.studyfile import (
    PRUNER_KEYS,
    SAMPLER_KEYS,
    PrunerSettings,
    SamplerSettings,
    StudyConfig,
    load_study_config,
)
from tests.helpers.studies import write_study


def test_the_schema_and_the_builders_know_the_same_kinds():
    assert set(SAMPLERS) == set(SAMPLER_KEYS)
    assert set(PRUNERS) == set(PRUNER_KEYS)


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("tpe", optuna.samplers.TPESampler),
        ("random", optuna.samplers.RandomSampler),
        ("grid", optuna.samplers.RandomSampler),
        ("cmaes", optuna.samplers.CmaEsSampler),
        ("gp", optuna.samplers.GPSampler),
    ],
)
def test_each_sampler_kind(kind, expected):
    assert isinstance(build_sampler(SamplerSettings(kind=kind), seed=3), expected)


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("median", optuna.pruners.MedianPruner),
        ("percentile", optuna.pruners.PercentilePruner),
        ("halving", optuna.pruners.SuccessiveHalvingPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("asha", AshaPruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_each_pruner_kind(kind, expected):
    assert isinstance(build_pruner(PrunerSettings(kind=kind), epochs=20), expected)


def _joined(storage: optuna.storages.BaseStorage, config: StudyConfig) -> optuna.Study:
    """The study as one worker process joins it: its own Study, its own sampler."""
    return with_sampler(optuna.load_study(study_name="test-study", storage=storage), config)


@pytest.mark.parametrize("kind", ["tpe", "random", "cmaes", "gp"])
def test_processes_joining_a_new_study_at_once_draw_apart_and_the_first_reproduces(
    tmp_path, image_folder, kind
):
    config = load_study_config(write_study(tmp_path, image_folder, sampler=f'kind = "{kind}"'))
    storages = [optuna.storages.InMemoryStorage() for _ in range(2)]
    for storage in storages:
        optuna.create_study(study_name="test-study", storage=storage, direction="maximize")
    # Two processes that joined one new study before either took a trial: alike until then
    together = [_joined(storages[0], config) for _ in range(2)]
    lone = _joined(storages[1], config)  # a study of its own, run by one process
    drawn: dict[str, list[dict]] = {"first": [], "second": [], "lone": []}
    for round_ in range(2):
        for name, study in zip(drawn, (*together, lone)):
            trial = study.ask()
            if round_ == 0:  # each process's first trial
                settle_sampler_seed(study, config, trial)
            suggest(trial, config)
            study.tell(trial, 0.5)
            drawn[name].append(trial.params)
    first, second = drawn["first"], drawn["second"]
    assert not {str(params) for params in first} & {str(params) for params in second}
    # The process that took trial 0 kept the study's seed: it drew what a lone process draws
    assert first[0] == drawn["lone"][0]
