"""hpsearch: hyperparameter search for image classifiers with Optuna.

The Python API, for notebooks and scripts (the `hpsearch` commands call the same functions):

    import search

    study = search.run_study("studies/quick.toml", epochs=2)  # as `hpsearch run`
    print(search.status(study.study_name))
    rows = search.trials(study.study_name)  # every trial, a dict each, as `hpsearch trials`
    search.report_figures(study.study_name)["factor-lr-curves"].show()
    best = search.export_best(study.study_name)  # the best trial's settings, as a dict
    trained = search.train(best, epochs=5)  # retrain it
    print(search.evaluate(trained.weights, trained.data).top1)

A script whose search runs worker processes (workers=2, a GPU machine) keeps its own code under
`if __name__ == "__main__":`: each worker process imports the script's main module again.

Each name is imported from its module in search.api when first used (PEP 562), so that
`import search`, and `hpsearch` commands that read a study, load neither torch nor Plotly.

One folder per concern, every import pointing down this list (tests/test_layout.py checks it):
cli -> api -> launch, results, serve -> run -> study -> studyfile -> errors, attrs, locations,
url_secrets -> trainer. docs/development.md says what each holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what a type checker and an editor see; at run time, __getattr__ imports
    from search.api.report import report_figures, write_report
    from search.api.searching import run_study
    from search.api.studies import StudyStatus, export_best, open_study, status, trials
    from search.api.training import TrainedRun, evaluate, train

__all__ = [
    "StudyStatus",
    "TrainedRun",
    "evaluate",
    "export_best",
    "open_study",
    "report_figures",
    "run_study",
    "status",
    "train",
    "trials",
    "write_report",
]


def __getattr__(name: str) -> Any:
    # One module per kind of work: reading a study must not import what trains (torch) or draws
    # (Plotly).
    if name in ("open_study", "status", "trials", "export_best", "StudyStatus"):
        from search.api import studies

        return getattr(studies, name)
    if name in ("report_figures", "write_report"):
        from search.api import report

        return getattr(report, name)
    if name == "run_study":
        from search.api import searching

        return searching.run_study
    if name in ("train", "evaluate", "TrainedRun"):
        from search.api import training

        return getattr(training, name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
