"""What the report draws, before any page: each factor's figures over the trials of all the
studies, then Optuna's views of each study, a `Figure` or a `Note` saying why it was left out.

`search.report_figures` returns these figures as they are; `search.results.page` lays the same
views out as the page, so a notebook's figures are the report's, and drawing them costs no page
(each figure as JSON, plotly.js inlined).
"""

from __future__ import annotations

from typing import NamedTuple

import optuna

from search.results.figures import (
    FACTOR_TITLES,
    Figure,
    Note,
    factor_curves_figure,
    factor_effect_figure,
    optuna_view,
    study_keys,
)
from search.results.one_value import left_out_params, one_value_text
from search.results.report_data import (
    FACTORS,
    OPTUNA_VIEWS,
    FactorInfo,
    TrialCurve,
    get_factor_info,
    trial_curves,
)


class FactorViews(NamedTuple):
    factor: str
    # Its curves and its effect on val top-1; a note: no trial of the studies sets it; or none
    # where every trial that sets it set one value (`one_value` says which)
    views: tuple[Figure, Figure] | tuple[Note] | tuple[()]
    one_value: str = ""  # `momentum was 0.9 in every trial`, where it took one value


class StudyViews(NamedTuple):
    study: str
    views: tuple[Figure | Note, ...]  # one per OPTUNA_VIEWS, in that order
    left_out: str = ""  # the parameters of one value its views leave out, said under its heading


class ReportViews(NamedTuple):
    factors: tuple[FactorViews, ...]  # in FACTORS' order
    studies: tuple[StudyViews, ...]  # in the order given

    @property
    def one_value(self) -> tuple[str, ...]:
        """Each factor left out as it took one value among the trials: `model was resnet18 in
        every trial`."""
        return tuple(factor.one_value for factor in self.factors if factor.one_value)

    @property
    def figures(self) -> tuple[Figure, ...]:
        """Every figure, in the page's order: the factors', then each study's views."""
        return tuple(view for view in self._views() if isinstance(view, Figure))

    @property
    def notes(self) -> tuple[Note, ...]:
        """Every view left out, in the page's order."""
        return tuple(view for view in self._views() if isinstance(view, Note))

    def _views(self) -> list[Figure | Note]:
        parts: list[FactorViews | StudyViews] = [*self.factors, *self.studies]
        return [view for part in parts for view in part.views]


def draw_views(studies: list[optuna.Study]) -> ReportViews:
    """The factors over all the studies' trials, then Optuna's views of each study."""
    curves = trial_curves(studies)
    keys = study_keys([study.study_name for study in studies])
    return ReportViews(
        tuple(_factor_views(curves, factor) for factor in FACTORS),
        tuple(
            StudyViews(
                study.study_name,
                tuple(optuna_view(study, view, key) for view in OPTUNA_VIEWS),
                left_out_params(study),
            )
            for study, key in zip(studies, keys)
        ),
    )


def _factor_views(curves: list[TrialCurve], factor: str) -> FactorViews:
    name = FACTOR_TITLES[factor]
    # The factors are read back from each trial's stored configuration, which another tool's
    # study may shape as it likes: one that breaks a figure costs that factor's figures, never
    # the report, and the note says why
    try:
        info = get_factor_info(curves, factor)
        if not info.curves:  # a trial still running is drawn once it ends: it may set it then
            note = Note(name.capitalize(), f"no finished trial of these studies sets {name}")
            return FactorViews(factor, (note,))
        if len(info.levels) == 1:  # a line at one value, or a legend of one level: no finding
            return FactorViews(factor, (), _one_value_text(info, curves))
        return FactorViews(factor, _factor_figures(info))
    except Exception as error:  # noqa: BLE001
        reason = f"its values could not be drawn: {type(error).__name__}: {error}"
        return FactorViews(factor, (Note(name.capitalize(), reason),))


def _one_value_text(info: FactorInfo, curves: list[TrialCurve]) -> str:
    """`momentum was 0.9 in every trial`, `... in every trial that sets it` where only some do
    (momentum: SGD's trials)."""
    trials = "trial" if len(info.curves) == len(curves) else "trial that sets it"
    return one_value_text(FACTOR_TITLES[info.factor], info.levels[0], trials)


def _factor_figures(info: FactorInfo) -> tuple[Figure, Figure]:
    name = FACTOR_TITLES[info.factor]
    return (
        Figure(
            f"factor-{info.factor}-curves",
            f"{name}: val top-1 per epoch",
            factor_curves_figure(info),
        ),
        Figure(
            f"factor-{info.factor}-effect",
            f"{name}: effect on val top-1",
            factor_effect_figure(info),
        ),
    )
