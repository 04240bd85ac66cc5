"""What a study found, collected as plain data for the report; `search.results.figures` draws it.

As in Optuna's visualization modules, collecting (`get_..._info(...) -> NamedTuple`) is kept
apart from drawing (`-> go.Figure`), so what a report says is tested without a browser.
A trial's factor values come from its `config` user attribute, not from its params: a points
study fixes some factors (one eps for every point), and those are no Optuna parameter.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from search import attrs
from search.results.one_value import one_value_text, single_values, varied_params
from search.study.epochs_budget import epochs_trained
from search.study.promotion import promoted, ran_to_an_end, shown_counts
from search.studyfile import SEARCHED

FACTORS = SEARCHED  # the four factors of the original experiment, and the model
# How a factor's values are spaced: lr and eps are
# scales (1e-3 is as far from 1e-2 as 1e-2 from 1e-1).
FACTOR_SCALES = {
    "optimizer": "categorical",
    "lr": "log",
    "eps": "log",
    "momentum": "linear",
    "model": "categorical",
}
TOP_TRIALS = 10
# Optuna's own views, in the order the report shows them; results/figures.py knows how to draw each.
OPTUNA_VIEWS = (
    "history",
    "importance",
    "fanova",
    "slice",
    "contour_lr_eps",
    "contour_lr_momentum",
    "parallel",
    "intermediate",
    "timeline",
)
CONTOUR_PARAMS = {"contour_lr_eps": ("lr", "eps"), "contour_lr_momentum": ("lr", "momentum")}
# Views that model the trials, not just show them, are held back until they can mean something.
# Importances: PED-ANOVA (Optuna's default) compares the top 10% of complete trials with all of
# them; up to 10 trials that top is one trial, and the bars rank that trial's settings. Measured
# on made studies where only lr matters (tests/helpers/made_trials.py, 30 seeds each), lr ranked
# first in 10/30 at 10 complete trials (about chance among 4 parameters), 18/30 at 11, 19/30 at
# 20 and 29/30 at 50: held back below 11, and marked rough below 50 (Optuna's docs ask for 5
# trials in the top 10%). fANOVA, over the same parameters, is held to the same numbers.
MIN_COMPLETE_FOR_IMPORTANCE = 11
SETTLED_IMPORTANCE = 50
# A contour paints the whole plane of two parameters from its points: 9 is the least that could
# place a low, middle and high value of one against each of the other's (3 x 3); with fewer, most
# of the colour is interpolated between two or three trials.
MIN_COMPLETE_FOR_CONTOUR = 9
ONE_VALUE = "no parameter takes more than one value among the complete trials"


class TrialCurve(NamedTuple):
    """One finished trial's val top-1 per epoch, with the factor values it trained with."""

    study: str
    number: int
    # "complete", "pruned", "paused" (asha, never promoted), "promoted" (paused, its continuation
    # not finished yet: promoting_numbers), "stopped" (cut short, its retry not finished yet:
    # attrs.stopped_numbers) or "fail"
    state: str
    epochs: tuple[int, ...]  # counted from 1, as the trial reported them
    val_top1: tuple[float, ...]  # 0..1, one per epoch
    factors: dict[str, Any]  # optimizer, lr, eps, momentum, model; None where one is left unset
    value: float | None  # a complete trial's value: its best val top-1
    fail_reason: str | None
    # The space each sampled number was drawn from, as (low, high): the axes and colour scales
    # span it, so a few trials are placed within the space rather than spread across a figure.
    ranges: dict[str, tuple[float, float]]


class FactorInfo(NamedTuple):
    """Every trial that sets one factor, for the curves figure and the effect figure."""

    factor: str
    scale: str  # "categorical", "log" or "linear"
    curves: tuple[TrialCurve, ...]
    levels: tuple[Any, ...]  # the distinct values, sorted
    # A number's span: the union of the spaces it was sampled from, else (fixed by points, say)
    # its lowest and highest value; None for a categorical factor
    bounds: tuple[float, float] | None = None
    # Every optimizer of the curves given, not only of those that set this factor: each effect
    # figure colours a trial by its optimizer, and an optimizer keeps one colour on the page
    optimizers: tuple[Any, ...] = ()


class TrialRow(NamedTuple):
    number: int
    state: str
    value: float | None  # best val top-1 of a complete trial, 0..1
    factors: dict[str, Any]  # only the factors the trial sets
    epochs_run: int
    seconds: float | None  # training and evaluation over its epochs_run; None: not recorded


class SummaryInfo(NamedTuple):
    study: str
    # per state: complete, pruned, fail, running, waiting; paused (asha: not promoted), promoted
    # and stopped (queued to resume), as `promotion.shown_counts` counts them
    counts: dict[str, int]
    best: TrialRow | None
    best_settings: dict[str, Any]  # the best trial's full training config
    epochs_trained: int  # restored epochs of resumed trials not counted again
    # What the same trials would have trained had each run to its last epoch, once each
    epochs_without_pruning: int
    compute_seconds: float
    top: tuple[TrialRow, ...]  # complete trials, best first


def curve_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """One finished trial per curve: a promoted trial's continuation, or a stopped trial's retry,
    reports its earlier epochs again (restored, or trained again), so once finished it alone draws
    the whole curve (until then the paused or stopped trial draws it); a continuation that never
    ran draws none. `trials`: all the study's trials, so that one resumed is known as such."""
    finished = ran_to_an_end(trials)
    resumed_by_finished = {attrs.stored_number(trial, attrs.RETRIED_FROM) for trial in finished}
    drawn_again = promoted(finished) | (attrs.stopped_numbers(trials) & resumed_by_finished)
    return [trial for trial in finished if trial.number not in drawn_again]


def promoting_numbers(trials: list[FrozenTrial]) -> set[int]:
    """The paused trials promoted whose continuation trains (or waits to resume): not finished,
    so the paused trial draws the curve so far."""
    finished = ran_to_an_end(trials)
    return promoted(trials) - promoted(finished)


def trial_factors(trial: FrozenTrial) -> dict[str, Any]:
    """The factors a trial trained with, fixed ones included; None where it leaves one unset."""
    config = attrs.trial_config(trial)
    return {factor: config.get(factor) for factor in FACTORS}


def trial_curve(
    study_name: str, trial: FrozenTrial, stopped: bool = False, promoting: bool = False
) -> TrialCurve:
    """`stopped`, `promoting`: among its study's `attrs.stopped_numbers`, `promoting_numbers`."""
    steps = sorted(trial.intermediate_values)
    return TrialCurve(
        study=study_name,
        number=trial.number,
        state=curve_state(trial, stopped, promoting),
        epochs=tuple(steps),
        val_top1=tuple(trial.intermediate_values[step] for step in steps),
        factors=trial_factors(trial),
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        fail_reason=_text(attrs.fail_reason(trial)),
        ranges=_sampled_ranges(trial),
    )


def curve_state(trial: FrozenTrial, stopped: bool, promoting: bool = False) -> str:
    if stopped:
        return "stopped"
    if promoting:
        return "promoted"
    return "paused" if attrs.is_paused(trial) else trial.state.name.lower()


def _sampled_ranges(trial: FrozenTrial) -> dict[str, tuple[float, float]]:
    return {
        name: (distribution.low, distribution.high)
        for name, distribution in trial.distributions.items()
        if name in FACTORS and isinstance(distribution, FloatDistribution)
    }


def trial_curves(studies: list[optuna.Study]) -> list[TrialCurve]:
    curves = []
    for study in studies:
        trials = study.get_trials(deepcopy=False)
        stopped, promoting = attrs.stopped_numbers(trials), promoting_numbers(trials)
        curves += [
            trial_curve(study.study_name, trial, trial.number in stopped, trial.number in promoting)
            for trial in curve_trials(trials)
        ]
    return curves


def get_factor_info(curves: list[TrialCurve], factor: str) -> FactorInfo:
    """The trials that set `factor` (momentum is set by SGD trials only, eps by the adaptive
    ones), on the factor's scale where its values fit one, else by level."""
    if factor not in FACTOR_SCALES:
        raise ValueError(f"factor must be one of {', '.join(FACTORS)}, but got {factor=}")
    setting = tuple(curve for curve in curves if curve.factors.get(factor) is not None)
    levels = _levels(setting, factor)
    optimizers = _optimizers(curves)
    if not all(_is_number(level) for level in levels):
        # Another tool's study may sample `lr` from names: drawn by level, as a choice is
        return FactorInfo(factor, "categorical", setting, levels, optimizers=optimizers)
    scale = FACTOR_SCALES[factor]
    bounds = None if scale == "categorical" else _bounds(setting, factor, levels)
    if scale == "log" and bounds is not None and bounds[0] <= 0:
        scale = "linear"  # a log scale has no place for 0, which another tool may sample lr from
    return FactorInfo(factor, scale, setting, levels, bounds, optimizers)


def _levels(curves: Iterable[TrialCurve], factor: str) -> tuple[Any, ...]:
    """The distinct values the curves set `factor` to, sorted."""
    values = {curve.factors.get(factor) for curve in curves} - {None}
    return tuple(sorted(values, key=_sort_key))


def _optimizers(curves: Iterable[TrialCurve]) -> tuple[Any, ...]:
    """The optimizers' levels; none where another tool's study stores one no set holds (a list):
    that costs no factor's figures but the optimizer's."""
    try:
        return _levels(curves, "optimizer")
    except TypeError:
        return ()


def _is_number(value: Any) -> bool:
    """A value a number's axis can place: True is a choice, not 1."""
    real = isinstance(value, (int, float)) and not isinstance(value, bool)
    return real and math.isfinite(value)


def _bounds(
    curves: tuple[TrialCurve, ...], factor: str, levels: tuple[Any, ...]
) -> tuple[float, float] | None:
    spans = [curve.ranges[factor] for curve in curves if factor in curve.ranges]
    spans += [(level, level) for level in levels]  # a fixed value may lie outside any space
    if not spans:
        return None
    return min(low for low, _ in spans), max(high for _, high in spans)


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def get_summary_info(study: optuna.Study, top: int = TOP_TRIALS) -> SummaryInfo:
    trials = study.get_trials(deepcopy=False)
    finished = ran_to_an_end(trials)
    complete = attrs.ranked(trials)
    best = complete[0] if complete else None
    return SummaryInfo(
        study=study.study_name,
        counts=shown_counts(trials),
        best=_row(best) if best else None,
        best_settings=attrs.trial_config(best) if best else {},
        epochs_trained=epochs_trained(finished),
        epochs_without_pruning=_epochs_without_pruning(finished),
        compute_seconds=sum(_compute_seconds(trial) for trial in finished),
        top=tuple(_row(trial) for trial in complete[:top]),
    )


def _row(trial: FrozenTrial) -> TrialRow:
    factors = {name: value for name, value in trial_factors(trial).items() if value is not None}
    return TrialRow(
        trial.number,
        trial.state.name.lower(),
        trial.value,
        factors,
        _epochs_run(trial),
        attrs.lineage_seconds(trial),
    )


# The readers below take what hpsearch records on a trial; another tool's study may hold None,
# text or a list under the same names, which is no count, and must not cost the report.


def _epochs_run(trial: FrozenTrial) -> int:
    return _whole(trial.user_attrs.get(attrs.EPOCHS_RUN), len(trial.intermediate_values))


def _epochs_without_pruning(finished: list[FrozenTrial]) -> int:
    """Each first attempt's planned epochs once: its retries and promoted continuations are the
    same training run."""
    planned = {attrs.first_attempt(trial): _epochs_planned(trial) for trial in finished}
    return sum(planned.values())


def _epochs_planned(trial: FrozenTrial) -> int:
    # Without pruning a failed trial would have failed just the same, after the epochs it ran:
    # only a pruned trial's planned epochs differ from its run, and the epochs a diverged trial
    # never reached are no saving of the pruner's.
    if trial.state == TrialState.FAIL:
        return _epochs_run(trial)
    return _whole(attrs.trial_config(trial).get("epochs"), _epochs_run(trial))


def _seconds(trial: FrozenTrial) -> float:
    seconds: Any = trial.user_attrs.get(attrs.SECONDS)
    return float(seconds) if attrs.is_seconds(seconds) else 0.0


def _compute_seconds(trial: FrozenTrial) -> float:
    """The trial's share of the device's time: its `seconds`, the wall time of the epochs it
    trained, with each epoch trained fused with K-1 other trials counted 1/K, as the K trials ran
    in it at once (summed whole, a fused group's time counted K times over). A history in another
    shape than ours counts whole."""
    history = trial.user_attrs.get(attrs.HISTORY)
    if not isinstance(history, list):
        return _seconds(trial)
    restored = max(0, attrs.stored_number(trial, attrs.RESUMED_FROM_EPOCH) or 0)
    shares = [_epoch_share(epoch) for epoch in history[restored:]]
    if not all(isinstance(share, float) for share in shares):
        return _seconds(trial)
    return sum(share for share in shares if share is not None)


def _epoch_share(epoch: Any) -> float | None:
    if not isinstance(epoch, dict):
        return None
    seconds: Any = epoch.get("seconds")
    fused: Any = epoch.get("fused_trials", 1)
    if attrs.is_seconds(seconds) and _is_number(fused) and fused >= 1:
        return float(seconds) / float(fused)
    return None


def _whole(value: Any, default: int) -> int:
    """`value` if it is a count (0, 3, or 3.0 as JSON may give it back), else `default`."""
    if _is_number(value) and value >= 0 and float(value).is_integer():
        return int(value)
    return default


def _text(value: Any) -> str | None:
    """A fail reason as text: ours are text, another tool's may be a number or a dict."""
    return value if value is None or isinstance(value, str) else str(value)


def view_obstacle(study: optuna.Study, view: str) -> str | None:
    """Why one of Optuna's views cannot be drawn for this study, or None when it can."""
    if view not in OPTUNA_VIEWS:
        raise ValueError(f"view must be one of {', '.join(OPTUNA_VIEWS)}, but got {view=}")
    trials = study.get_trials(deepcopy=False)
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    if view == "timeline":
        return None if trials else "the study has no trials yet"
    if view == "intermediate":
        return (
            None
            if any(trial.intermediate_values for trial in trials)
            else "no trial has reported an epoch yet"
        )
    if not complete:
        return "the study has no complete trial yet"
    if view in ("importance", "fanova"):
        return _importance_obstacle(complete, view)
    if view in CONTOUR_PARAMS:
        return _contour_obstacle(complete, *CONTOUR_PARAMS[view])
    if view in ("slice", "parallel") and not any(trial.params for trial in complete):
        return "its complete trials sample no parameter"
    if view == "parallel" and len(complete) < 2:  # one line, coloured on a scale of nothing
        return "parallel coordinates need at least 2 complete trials, but the study has 1"
    return None if view not in ("slice", "parallel") or varied_params(complete) else ONE_VALUE


def _importance_obstacle(complete: list[FrozenTrial], view: str) -> str | None:
    if view == "fanova" and importlib.util.find_spec("sklearn") is None:
        return "fANOVA needs scikit-learn, which is not installed (pip install scikit-learn)"
    if len(complete) < MIN_COMPLETE_FOR_IMPORTANCE:
        return (
            f"importances need at least {MIN_COMPLETE_FOR_IMPORTANCE} complete trials to mean "
            f"anything, but the study has {len(complete)}"
        )
    return None if varied_params(complete) else ONE_VALUE


def _contour_obstacle(complete: list[FrozenTrial], first: str, second: str) -> str | None:
    both = [trial for trial in complete if first in trial.params and second in trial.params]
    if len(both) < MIN_COMPLETE_FOR_CONTOUR:
        return (
            f"a contour of {first} against {second} needs at least {MIN_COMPLETE_FOR_CONTOUR} "
            f"complete trials that sample both to mean anything, but the study has {len(both)}"
        )
    # A parameter of one value is a line, and the contour paints a plane from it
    trials = f"complete trial that samples {first} and {second}"
    single = single_values(both)
    texts = [
        one_value_text(name, single[name], trials) for name in (first, second) if name in single
    ]
    return "; ".join(texts) or None


def format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"
