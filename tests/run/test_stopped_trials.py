"""A trial the user stopped (Ctrl-C) is no failure. It ends FAIL in Optuna, as it must to be
retried, but its line says when and why it stopped and which trial resumes it, and status, the
report, the progress line and the dashboard note count and draw it apart: stopped, to resume."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from search import attrs
from search.results.report_data import get_summary_info, trial_curves
from search.results.status import format_status, study_status
from search.results.timeline import STOPPED, timeline_with_stopped_trials
from search.run import objective
from search.run.progress import counts_text
from search.run.stopping import StopRequest
from search.run.worker import WorkerOptions, run_worker
from search.serve.notes import best_trial_line
from search.study.storage import open_storage
from search.studyfile import load_study_config
from tests.helpers.notes import trial_note
from tests.helpers.studies import write_study
from trainer.epoch import EpochWork

NAME = "test-study"


def test_a_trial_stopped_in_its_first_epoch_is_said_to_start_over(
    tmp_path, image_folder, cache_dir, monkeypatch, capfd, one_torch_thread
):
    """Its line had promised a resume "from its last checkpoint", of which there is none."""
    config = load_study_config(write_study(tmp_path, image_folder, trials=1, epochs=2))
    options = WorkerOptions(f"sqlite:///{tmp_path / 's.db'}", "cpu", cache_dir, progress=False)
    stop, batches = StopRequest(), EpochWork.train_batches

    def first_batch_then_ctrl_c(work):
        for batch in batches(work):
            stop.request("SIGINT")
            yield batch

    monkeypatch.setattr(EpochWork, "train_batches", first_batch_then_ctrl_c)
    capfd.readouterr()
    assert run_worker(config, options, create=True, stop=stop).left_to_resume == 1
    line = "trial 0 stopped in epoch 1 (SIGINT); queued to run again from epoch 1 as trial 1"
    assert line in capfd.readouterr().err.splitlines()


def test_a_trial_stopped_by_ctrl_c_is_counted_and_drawn_as_stopped_not_failed(
    tmp_path, image_folder, cache_dir, monkeypatch, capfd, one_torch_thread
):
    config = load_study_config(
        write_study(
            tmp_path, image_folder, trials=1, epochs=2, pruner='kind = "none"', image_size=16
        )
    )
    url = f"sqlite:///{tmp_path / 's.db'}"
    options = WorkerOptions(
        url, "cpu", cache_dir, progress=False, checkpoint_dir=tmp_path / "checkpoints"
    )
    stop = StopRequest()
    report = objective.report_epoch

    def then_ctrl_c(trial, epoch, val_top1, **last):
        report(trial, epoch, val_top1, **last)
        stop.request("SIGINT")  # as stop_on_signals' handler does: the worker stops in epoch 2

    monkeypatch.setattr(objective, "report_epoch", then_ctrl_c)
    capfd.readouterr()
    summary = run_worker(config, options, create=True, stop=stop)
    assert summary.left_to_resume == 1
    lines = capfd.readouterr().err.splitlines()
    line = (
        "trial 0 stopped in epoch 2 (SIGINT); queued to resume from its last checkpoint as trial 1"
    )
    assert line in lines, lines

    study = optuna.load_study(study_name=NAME, storage=url)
    stopped, retry = study.get_trials(deepcopy=False)
    assert stopped.state == TrialState.FAIL, "Optuna's FAIL: the only state a retry follows"
    assert stopped.user_attrs[attrs.FAIL_REASON] == "stopped in epoch 2 (SIGINT)"
    assert retry.user_attrs[attrs.RETRY_OF] == 0
    assert retry.user_attrs[attrs.RETRY_REASON] == "trial 0: stopped in epoch 2 (SIGINT)"
    trials = study.get_trials(deepcopy=False)

    (row,) = study_status(open_storage(url), NAME)
    assert (row["stopped"], row["fail"], row["waiting"]) == (1, 0, 1)
    header, values = format_status([row]).splitlines()[:2]
    assert values.split()[header.split().index("stopped")] == "1"
    assert values.split()[header.split().index("failed")] == "0"
    counts = get_summary_info(study).counts
    assert (counts["stopped"], counts["fail"]) == (1, 0)
    assert "stopped 1, failed 0" in counts_text(trials)
    assert "1 stopped to resume" in best_trial_line(study)
    assert "failed" not in best_trial_line(study)
    assert [curve.state for curve in trial_curves([study])] == ["stopped"]
    timeline = timeline_with_stopped_trials(study)
    assert [(trace.name, tuple(trace.y)) for trace in timeline.data] == [
        ("WAITING", (1,)),
        (STOPPED, (0,)),
    ], "no red FAIL bar"

    monkeypatch.setattr(objective, "report_epoch", report)
    run_worker(config, options)  # the retry resumes it from its checkpoint and completes
    stopped, retry = optuna.load_study(study_name=NAME, storage=url).get_trials(deepcopy=False)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs[attrs.RESUMED_FROM_EPOCH] == 1
    assert trial_note(study, stopped).startswith(
        "**Cut short, to resume**: stopped in epoch 2 (SIGINT)."
    )
    assert trial_note(study, retry).startswith("**Retry of [trial 0](/dashboard/")
    assert "Epoch 1 was restored from the checkpoint" in trial_note(study, retry)
    (row,) = study_status(open_storage(url), NAME)
    assert (row["stopped"], row["fail"], row["complete"]) == (1, 0, 1)
    curves = trial_curves([study])
    assert [(curve.number, curve.state, curve.epochs) for curve in curves] == [
        (1, "complete", (1, 2))
    ], "the retry draws the whole curve, as a promoted trial's continuation does"


def test_stops_asked_for_resume_however_often_they_come_and_faults_are_bounded(
    tmp_path, image_folder, cache_dir, monkeypatch, one_torch_thread
):
    # A SLURM task stopped at its time limit, requeued, stopped again: each stop spent one of
    # max_retries (2), and the third lost the trial and deleted its checkpoints
    config = load_study_config(
        write_study(
            tmp_path,
            image_folder,
            trials=1,
            epochs=5,
            pruner='kind = "none"',
            image_size=16,
            extra="\n[checkpoint]\nevery_epochs = 1\n",
        )  # fmt: skip
    )
    url = f"sqlite:///{tmp_path / 's.db'}"
    options = WorkerOptions(
        url, "cpu", cache_dir, progress=False, checkpoint_dir=tmp_path / "checkpoints"
    )
    report = objective.report_epoch
    for job in range(4):  # four time limits, each after one more epoch
        stop = StopRequest()

        def then_time_limit(trial, epoch, val_top1, stop=stop, **last):
            report(trial, epoch, val_top1, **last)
            stop.request("SIGTERM")

        monkeypatch.setattr(objective, "report_epoch", then_time_limit)
        assert run_worker(config, options, create=job == 0, stop=stop).left_to_resume == 1
    monkeypatch.setattr(objective, "report_epoch", report)
    run_worker(config, options, stop=StopRequest())
    study = optuna.load_study(study_name=NAME, storage=url)
    *stopped, last = study.get_trials(deepcopy=False)
    assert [trial.state for trial in stopped] == [TrialState.FAIL] * 4
    assert last.state == TrialState.COMPLETE and last.user_attrs[attrs.RESUMED_FROM_EPOCH] == 4
    assert (last.user_attrs[attrs.ATTEMPT], last.user_attrs[attrs.FAULTS]) == (4, 0)
