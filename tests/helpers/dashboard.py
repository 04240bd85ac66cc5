"""Studies and ports for the dashboard tests."""

from __future__ import annotations

import socket
import sys

import optuna


def make_study(url: str, name: str = "dash-study", trials: int = 5) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("lr", 1e-3, 1.0, log=True), n_trials=trials)
    return study


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# `python -m search` with Ctrl-C as a terminal gives it: a shell's background job (CI's) starts
# with SIGINT ignored, and so would the server. Set in the child's own Python rather than by a
# preexec_fn, which makes subprocess fork where it would vfork, running the atfork handlers of
# this process's libraries: gRPC's (loaded here by the proxy tests) killed a child before its
# exec ("epoll_wait error: Bad file descriptor").
INTERRUPTIBLE_HPSEARCH = [
    sys.executable,
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('search', run_name='__main__', alter_sys=True)",
]
