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
    # Its curves and its effect on val top-1, or a note: no trial of the studies sets it
    views: tuple[Figure, Figure] | tuple[Note]


class StudyViews(NamedTuple):
    study: str
    views: tuple[Figure | Note, ...]  # one per OPTUNA_VIEWS, in that order


class ReportViews(NamedTuple):
    factors: tuple[FactorViews, ...]  # in FACTORS' order
    studies: tuple[StudyViews, ...]  # in the order given

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
                study.study_name, tuple(optuna_view(study, view, key) for view in OPTUNA_VIEWS)
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
        if not info.curves:
            return FactorViews(
                factor, (Note(name.capitalize(), f"no trial of these studies sets {name}"),)
            )
        return FactorViews(factor, _factor_figures(info))
    except Exception as error:  # noqa: BLE001
        reason = f"its values could not be drawn: {type(error).__name__}: {error}"
        return FactorViews(factor, (Note(name.capitalize(), reason),))


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
