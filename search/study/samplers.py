"""Samplers and pruners by name: one dict each, from the `kind` of a study file to its builder.

The study file's `[sampler]`/`[pruner]` keys per kind live with the schema
(`search.studyfile.SAMPLER_KEYS`, `PRUNER_KEYS`); a test keeps the two lists of kinds equal.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

from search.study.promotion import AshaPruner
from search.studyfile import PrunerSettings, SamplerSettings


def _tpe(settings: SamplerSettings, seed: int) -> optuna.samplers.BaseSampler:
    # group=True lets multivariate TPE model the conditional space (eps and momentum
    # exist only for some optimizers) instead of falling back to independent sampling.
    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=settings.multivariate,
        group=settings.multivariate,
        constant_liar=settings.constant_liar,
        n_startup_trials=settings.startup_trials,
    )


def _random(settings: SamplerSettings, seed: int) -> optuna.samplers.BaseSampler:
    # Also what a "grid" study uses: its points are listed in the file and queued, so whatever
    # samples after the queue runs dry never repeats a point that another worker ran.
    return optuna.samplers.RandomSampler(seed=seed)


SAMPLERS: dict[str, Callable[[SamplerSettings, int], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "random": _random,
    "grid": _random,
    "cmaes": lambda settings, seed: optuna.samplers.CmaEsSampler(
        seed=seed, n_startup_trials=settings.startup_trials, warn_independent_sampling=False
    ),
    "gp": lambda settings, seed: optuna.samplers.GPSampler(
        seed=seed, n_startup_trials=settings.startup_trials, warn_independent_sampling=False
    ),
}

# Each builder takes the settings and the study's epochs per trial (hyperband's largest budget).
PRUNERS: dict[str, Callable[[PrunerSettings, int], optuna.pruners.BasePruner]] = {
    "median": lambda settings, epochs: optuna.pruners.MedianPruner(
        n_startup_trials=settings.startup_trials, n_warmup_steps=settings.warmup_epochs
    ),
    "percentile": lambda settings, epochs: optuna.pruners.PercentilePruner(
        settings.percentile,
        n_startup_trials=settings.startup_trials,
        n_warmup_steps=settings.warmup_epochs,
    ),
    "halving": lambda settings, epochs: optuna.pruners.SuccessiveHalvingPruner(
        min_resource=settings.min_epochs, reduction_factor=settings.reduction_factor
    ),
    "hyperband": lambda settings, epochs: optuna.pruners.HyperbandPruner(
        min_resource=settings.min_epochs,
        max_resource=epochs,
        reduction_factor=settings.reduction_factor,
    ),
    # Pauses instead of stopping; the worker promotes paused trials (search.study.promotion)
    "asha": lambda settings, epochs: AshaPruner(
        settings.min_epochs, settings.reduction_factor, epochs
    ),
    "none": lambda settings, epochs: optuna.pruners.NopPruner(),
}


def build_sampler(settings: SamplerSettings, seed: int) -> optuna.samplers.BaseSampler:
    return SAMPLERS[settings.kind](settings, seed)


def build_pruner(settings: PrunerSettings, epochs: int) -> optuna.pruners.BasePruner:
    return PRUNERS[settings.kind](settings, epochs)
