"""Studies and ports for the dashboard tests."""

from __future__ import annotations

import socket

import optuna


def make_study(url: str, name: str = "dash-study", trials: int = 5) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("lr", 1e-3, 1.0, log=True), n_trials=trials)
    return study


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
