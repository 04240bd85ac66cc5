"""Every sampler and pruner kind a study file may name builds the Optuna object it stands for."""

from __future__ import annotations

import optuna
import pytest

from search.study.promotion import AshaPruner
from search.study.samplers import PRUNERS, SAMPLERS, build_pruner, build_sampler
from search.studyfile import PRUNER_KEYS, SAMPLER_KEYS, PrunerSettings, SamplerSettings


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
