"""The progress line of `hpsearch run` on a terminal: under the bar of trials, the epoch each
running trial is in; a rate (and time left) counting only the trials this run finished; and a
worker's line written on a line of its own, not glued to the bar. Made trials, no training."""

from __future__ import annotations

import io
import re

import optuna
import pytest
from optuna.trial import create_trial

from search import attrs
from search.results.status import study_status
from search.run.log import WorkerLog
from search.run.progress import StudyProgress

CURSOR_MOVES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@pytest.fixture
def study():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.create_study(study_name="quick", direction="maximize")


def running(study: optuna.Study, epochs_done: int, epochs: int | None = 6) -> optuna.Trial:
    trial = study.ask()
    if epochs is not None:
        trial.set_user_attr(attrs.CONFIG, {"epochs": epochs})
    for epoch in range(1, epochs_done + 1):
        trial.report(0.3, epoch)
    return trial


def test_under_the_bar_each_running_trial_shows_the_epoch_it_is_in(study):
    running(study, 1)
    running(study, 1)
    running(study, 0)
    running(study, 0, epochs=None)  # claimed, its settings not drawn yet
    output = io.StringIO()
    with StudyProgress(study, 12, file=output) as progress:
        progress.refresh()
        line = progress.running.desc
    assert line == "running: trials 0, 1 in epoch 2/6, trial 2 in epoch 1/6, trial 3 starting"
    assert line in output.getvalue()


def test_a_resumed_study_shows_no_time_left_until_a_trial_of_this_run_finishes(study):
    for value in (0.2, 0.3, 0.25, 0.4):  # finished by an earlier run
        study.add_trial(create_trial(value=value))
    with StudyProgress(study, 12, file=io.StringIO()) as progress:
        progress.refresh()
        # The 4 earlier trials are no rate: 4 trials in the first second would say 2 s left
        assert "4/12 [00:00<?, ?trial/s" in str(progress.bar)
        trial = running(study, 6)
        study.tell(trial, 0.5)
        progress.refresh()
        assert "5/12" in str(progress.bar) and "<?" not in str(progress.bar)


def test_a_workers_line_beside_the_bar_is_a_line_of_its_own(study, monkeypatch):
    output = io.StringIO()
    monkeypatch.setattr("sys.stderr", output)
    running(study, 1)
    with StudyProgress(study, 12) as progress:
        progress.refresh()
        WorkerLog(None, "quick").trial_stopped(6, "in epoch 2 (SIGINT)", retry=9, checkpoint=True)
    shown = [
        CURSOR_MOVES.sub("", line).rsplit("\r", 1)[-1] for line in output.getvalue().split("\n")
    ]
    assert (
        "trial 6 stopped in epoch 2 (SIGINT); queued to resume from its last checkpoint as trial 9"
        in shown
    )


def test_a_retry_resuming_shows_the_epochs_it_restored_as_it_reports_them_again(study):
    # Reporting its restored epochs takes seconds for a long run: the bar and `status` said
    # "epoch 60/300" of a trial resumed at epoch 241
    retry = running(study, 2, epochs=8)
    retry.set_user_attr(attrs.RESUMED_FROM_EPOCH, 5)
    with StudyProgress(study, 12, file=io.StringIO()) as progress:
        progress.refresh()
        assert progress.running.desc == "running: trial 0 in epoch 6/8"
    [row] = study_status(study._storage, "quick")
    assert row["running_trials"][0]["epochs_done"] == 5
