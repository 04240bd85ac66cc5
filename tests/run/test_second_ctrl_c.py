"""A second Ctrl-C exits at once, but never between a stopped trial's FAIL and its queued retry:
there, its lineage was lost for good (FAIL with no retry, a failure to every count)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import CodeType, FrameType

import pytest
import torch
from optuna.trial import TrialState

from search import attrs
from search.cli import main
from search.run.objective import report_epoch
from search.study.retries import queue_retry
from tests.helpers.studies import trials_of, write_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TWO_POINTS = """
[[points]]
optimizer = "sgd"
lr = 0.01
momentum = 0.9
[[points]]
optimizer = "adam"
lr = 1e-3
eps = 1e-8
"""


@contextmanager
def sigint_on_first_call(*codes: CodeType) -> Iterator[None]:
    """A real SIGINT to this process as each of `codes` is first called, in order: a Ctrl-C at an
    exact point of the worker's own code, where a person's timing would hit it by chance."""
    pending = list(codes)

    def on_call(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and pending and frame.f_code is pending[0]:
            pending.pop(0)
            signal.raise_signal(signal.SIGINT)

    sys.setprofile(on_call)
    try:
        yield
    finally:
        sys.setprofile(None)
    assert not pending, "every Ctrl-C was given"


def test_a_second_ctrl_c_amid_a_stopped_trials_records_still_queues_every_retry(
    tmp_path, image_folder, cache_dir, capfd
):
    path = write_study(
        tmp_path, image_folder, trials=2, epochs=3, points=TWO_POINTS, pruner='kind = "none"'
    )
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    command = ["run", str(path), "--storage", url, "--device", "cpu", "--no-progress"]
    command += ["--cache-dir", str(cache_dir), "--trials-per-worker", "2"]
    # The first after an epoch's report stops both fused trials at the next step; the second
    # comes as the first of them, told FAIL, is queued to resume
    with sigint_on_first_call(report_epoch.__code__, queue_retry.__code__):
        assert main(command) == 130  # out at once, as a second Ctrl-C asks
    trials = trials_of(url)
    stopped = [trial for trial in trials if trial.state == TrialState.FAIL]
    queued = [trial for trial in trials if attrs.RETRY_OF in trial.user_attrs]
    assert [trial.number for trial in stopped] == [0, 1]
    assert sorted(trial.user_attrs[attrs.RETRY_OF] for trial in queued) == [0, 1], (
        "each stopped trial has its retry"
    )
    assert attrs.stopped_numbers(trials) == {0, 1}, "stopped, not failed for good"
    assert all(trial.state == TrialState.WAITING for trial in queued)
    # Said of every trial in flight, not of one
    said = "SIGINT: stopping at a clean point; each trial in flight is queued to resume"
    assert said in capfd.readouterr().err


def test_a_second_ctrl_c_inside_the_stop_s_checkpoint_write_is_no_fault_of_the_trial(
    tmp_path, image_folder, cache_dir
):
    """The second Ctrl-C lands in torch.save as the stop writes the trial's checkpoint: the
    KeyboardInterrupt comes out as the zip writer's RuntimeError ("unexpected pos"), which was the
    trial's fail reason and its log line (`stopped by RuntimeError in its worker`)."""
    path = write_study(tmp_path, image_folder, trials=1, epochs=3, pruner='kind = "none"')
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    command = ["run", str(path), "--storage", url, "--device", "cpu", "--no-progress"]
    command += ["--cache-dir", str(cache_dir)]
    with sigint_on_first_call(report_epoch.__code__, torch.serialization._save.__code__):
        assert main(command) == 130
    stopped, retry = trials_of(url)
    assert attrs.fail_reason(stopped) == "stopped at once by a second Ctrl-C"
    assert attrs.stopped_numbers([stopped, retry]) == {0}, "stopped, no fault"
    assert retry.user_attrs[attrs.RETRY_OF] == 0 and retry.user_attrs[attrs.FAULTS] == 0
