"""asha searches that train on small images: a trial pauses at a rung with its checkpoint, is
promoted and resumed with its earlier epochs intact, or is closed with its checkpoint removed;
and `[study] epochs_budget` stops every worker.

To know which trial pauses and which is promoted, the trials it is ranked against at its rung are
made by hand: one that scored better before it (H), and two more queued behind it (L1, L2) that
the test finishes itself, as other workers would, with scores below or above it.
"""

from __future__ import annotations

import dataclasses
import re
import shutil

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from search import attrs
from search.cli import main
from search.launch.local import launch
from search.results.report_data import get_summary_info, trial_curves
from search.results.status import format_status, study_status
from search.run import trial_files
from search.run.joining import join
from search.run.worker import WorkerOptions
from search.study.epochs_budget import epochs_trained
from search.study.storage import open_storage
from search.studyfile import load_study_config
from tests.helpers.made_trials import finish_by_hand
from tests.helpers.notes import trial_note
from tests.helpers.studies import trials_of, write_study

ASHA = 'kind = "asha"\nmin_epochs = 1\nreduction_factor = 2'
SPACE = (
    'optimizer = ["sgd", "adam"]\nlr = { low = 1e-4, high = 0.1 }\n'
    "eps = { low = 1e-8, high = 1e-6 }\nmomentum = { low = 0.0, high = 0.9 }"
)
# Learns little in one epoch, so it scores below H's 100% at epoch 1 and pauses there
WEAK_FIRST = '\n[[warm_start]]\noptimizer = "sgd"\nlr = 1e-4\nmomentum = 0.0\n'


@pytest.fixture
def options(tmp_path, cache_dir):
    return WorkerOptions(
        f"sqlite:///{tmp_path / 'asha.db'}",
        "cpu",
        cache_dir,
        progress=False,
        checkpoint_dir=tmp_path / "checkpoints",
    )


def paused_study(tmp_path, image_folder, options, *, before_launch=lambda study: None):
    """Trial 0 (the warm start) trains one epoch and pauses there, second of two at the rung;
    L1 and L2 wait behind it, so it may still be promoted."""
    config = load_study_config(
        write_study(
            tmp_path, image_folder, trials=2, epochs=2, space=SPACE, pruner=ASHA, extra=WEAK_FIRST
        )
    )
    study = join(config, options, create=True).study
    study.add_trial(create_trial(value=1.0, intermediate_values={1: 1.0, 2: 1.0}))  # H
    for _ in range(2):  # L1, L2: queued points that the budget of 2 keeps from starting here
        study.enqueue_trial({"optimizer": "sgd", "lr": 1e-3, "momentum": 0.0})
    before_launch(study)
    launch(config, options)
    return config, study


def checkpoint_of_trial_0(options, study):
    folder = trial_files.trial_folder(
        trial_files.study_folder(options.checkpoint_dir, study), first_attempt=0
    )
    return folder / "last.pt"


def test_a_paused_trial_is_promoted_and_resumes_from_its_checkpoint_with_its_epochs_intact(
    tmp_path, image_folder, options, one_torch_thread, capfd
):
    def killed_mid_write(study):  # as an earlier attempt of trial 0's lineage would leave it
        lineage = checkpoint_of_trial_0(options, study).parent
        lineage.mkdir(parents=True)
        (lineage / ".last.pt.0a1b2c3d.tmp").write_bytes(b"half a checkpoint")

    logged = dataclasses.replace(options, log_format="text")
    config, study = paused_study(tmp_path, image_folder, logged, before_launch=killed_mid_write)
    paused = trials_of(options.storage_url)[0]
    (queued,) = [
        trial for trial in trials_of(options.storage_url) if attrs.PROMOTION_OF in trial.user_attrs
    ]
    assert re.search(
        r"trial 0 PRUNED: .*\(paused at epoch 1 at val top-1 [\d.]+%; continues as trial "
        rf"{queued.number} if promoted\)",
        capfd.readouterr().err,
    ), "the log names the continuation, whose number the log would skip unexplained"
    assert paused.state == TrialState.PRUNED and paused.user_attrs[attrs.PAUSED_AT] == 1
    assert paused.user_attrs[attrs.EPOCHS_RUN] == 1 and list(paused.intermediate_values) == [1]
    kept = [path.name for path in checkpoint_of_trial_0(options, study).parent.iterdir()]
    assert kept == ["last.pt"], "a paused trial keeps its checkpoint, and no half-written one"
    status = study_status(open_storage(options.storage_url), "test-study")[0]
    assert (status["paused"], status["pruned"], status["waiting"]) == (1, 0, 2)
    assert " paused " in format_status([status])

    finish_by_hand(study, at_rung_1=0.0)  # now 2nd of 4 at the rung: in the top half
    launch(config, logged, trials=4)

    trials = trials_of(options.storage_url)
    continuation = next(trial for trial in trials if attrs.PROMOTION_OF in trial.user_attrs)
    promoted = f"trial {continuation.number} COMPLETE (promoted from trial 0): "
    assert promoted in capfd.readouterr().err
    assert continuation.state == TrialState.COMPLETE
    assert continuation.user_attrs[attrs.PROMOTION_OF] == 0 == attrs.first_attempt(continuation)
    assert continuation.user_attrs[attrs.RESUMED_FROM_EPOCH] == 1
    assert continuation.params == paused.params
    assert continuation.intermediate_values[1] == paused.intermediate_values[1]
    assert continuation.user_attrs[attrs.HISTORY][0] == paused.user_attrs[attrs.HISTORY][0]
    assert epochs_trained([continuation]) == 1, "it trained epoch 2 only"
    # and its time is epoch 2's: epoch 1's is the paused trial's, which a report sums already
    trained = continuation.user_attrs[attrs.HISTORY][1:]
    assert continuation.user_attrs[attrs.SECONDS] == round(trained[0]["seconds"], 3)
    assert continuation.user_attrs[attrs.IMAGES_PER_SECOND] == round(
        trained[0]["images_per_second"], 1
    )
    # The dashboard draws them as a Pruned trial and a new one: their notes say how they join
    assert trial_note(study, paused).startswith("**Paused at epoch 1** (asha)")
    assert f"[trial {continuation.number}](/dashboard/studies/" in trial_note(study, paused)
    assert trial_note(study, continuation).startswith("**Promotion of [trial 0](/dashboard/")
    assert "Epoch 1 was restored from the checkpoint" in trial_note(study, continuation)
    assert not [
        trial for trial in trials if trial.state in (TrialState.WAITING, TrialState.RUNNING)
    ]
    assert not checkpoint_of_trial_0(options, study).exists(), "released once it completed"

    curves = {curve.number: curve for curve in trial_curves([study])}
    assert 0 not in curves, "the promoted trial is drawn once, by its continuation"
    assert curves[continuation.number].epochs == (1, 2)
    summary = get_summary_info(study)
    assert (summary.counts["promoted"], summary.counts["paused"]) == (1, 0)
    # H 2 epochs, L1 and L2 one each (by hand), trial 0 one, then its continuation one more:
    # the promoted trial trained its 2 epochs once, as it would have without pruning
    assert summary.epochs_trained == 6 == summary.epochs_without_pruning


def test_a_promoted_trial_whose_checkpoint_is_gone_retrains_in_the_open_each_epoch_once(
    tmp_path, image_folder, options, capsys, one_torch_thread
):
    config, study = paused_study(tmp_path, image_folder, options)
    checkpoint = checkpoint_of_trial_0(options, study)
    shutil.rmtree(checkpoint.parent)  # removed by hand, or on a disk this worker does not see
    finish_by_hand(study, at_rung_1=0.0)  # 2nd of 4 at the rung: promoted
    capsys.readouterr()
    launch(config, dataclasses.replace(options, log_format="text"), trials=4)

    continuation = next(
        t for t in trials_of(options.storage_url) if attrs.PROMOTION_OF in t.user_attrs
    )
    assert continuation.state == TrialState.COMPLETE
    lost = continuation.user_attrs[attrs.CHECKPOINT_LOST]
    assert (
        f"promotion of trial 0 paused at epoch 1, found 0 epoch(s) to resume in {checkpoint}"
        in lost
    )
    assert lost.endswith("it retrains from epoch 1")
    assert f"warning (hpsearch.worker): {lost}" in capsys.readouterr().err, "a line of its log"
    assert attrs.RESUMED_FROM_EPOCH not in continuation.user_attrs, "nothing was restored"
    # Its curve is its own run, each epoch reported once; the paused trial's epoch 1 stays its own
    assert list(continuation.intermediate_values) == [1, 2]
    assert [epoch["epoch"] for epoch in continuation.user_attrs[attrs.HISTORY]] == [1, 2]
    curves = {curve.number: curve for curve in trial_curves([study])}
    assert 0 not in curves and curves[continuation.number].epochs == (1, 2)
    # Epoch 1 of trial 0 was trained twice, and the epoch budget counts it twice
    assert epochs_trained([continuation]) == 2
    summary = get_summary_info(study)
    assert summary.epochs_trained == 7 == summary.epochs_without_pruning + 1


def test_a_paused_trial_that_can_no_longer_be_promoted_loses_its_checkpoint(
    tmp_path, image_folder, options, one_torch_thread
):
    config, study = paused_study(tmp_path, image_folder, options)
    assert checkpoint_of_trial_0(options, study).exists()

    finish_by_hand(study, at_rung_1=0.99)  # 4th of 4: never in the top half
    launch(config, options, trials=4)

    trials = trials_of(options.storage_url)
    closed = next(trial for trial in trials if attrs.PROMOTION_OF in trial.user_attrs)
    assert closed.state == TrialState.PRUNED and not closed.intermediate_values
    assert "trial 0, paused at epoch 1" in closed.user_attrs[attrs.PROMOTION_CLOSED]
    assert trial_note(study, closed).startswith(
        "**Not promoted**: this trial, queued to continue [trial 0](/dashboard/"
    )
    assert not checkpoint_of_trial_0(options, study).parent.exists()
    assert not [trial for trial in trials if trial.state == TrialState.WAITING]
    summary = get_summary_info(study)
    assert (summary.counts["paused"], summary.counts["promoted"]) == (1, 0)
    assert [curve.state for curve in trial_curves([study]) if curve.number == 0] == ["paused"]


def test_an_asha_search_from_the_cli_leaves_no_queued_trial_and_only_the_best_weights(
    tmp_path, image_folder, cache_dir, capsys, one_torch_thread
):
    path = write_study(tmp_path, image_folder, trials=5, epochs=2, space=SPACE, pruner=ASHA)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    run = ["run", str(path), "--storage", url, "--cache-dir", str(cache_dir), "--device", "cpu"]
    main([*run, "--no-progress"])
    trials = optuna.load_study(study_name="test-study", storage=url).get_trials(deepcopy=False)
    assert {trial.state for trial in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert any(attrs.PAUSED_AT in trial.user_attrs for trial in trials)
    assert attrs.budget_spent(trials) == 5, "a continuation is no new trial"
    kept = sorted(path.name for path in (tmp_path / "user-checkpoints").rglob("*.pt"))
    assert kept == ["weights.pt"], "paused trials' checkpoints are gone once the search ends"
    paused = sum(attrs.PAUSED_AT in trial.user_attrs for trial in trials)
    capsys.readouterr()
    main(["status", "--storage", url])
    assert "paused" in capsys.readouterr().out
    main(["report", "--study", "test-study", "--storage", url, "-o", str(tmp_path / "r.html")])
    page = (tmp_path / "r.html").read_text()
    assert "paused and not promoted" in page and "saved by pruning" in page
    assert f"{paused - _promoted(trials)} paused and not promoted" in page

    # Run again, it has nothing left: no paused trial has a continuation to promote
    capsys.readouterr()
    assert main([*run, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "study 'test-study' has nothing left to run: 5 of its 5 trials are finished" in err
    assert "worker started" not in err


def _promoted(trials) -> int:
    return sum(
        attrs.PROMOTION_OF in trial.user_attrs and attrs.PROMOTION_CLOSED not in trial.user_attrs
        for trial in trials
    )


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_the_epoch_budget_stops_two_asha_workers_and_leaves_nothing_queued(
    request, tmp_path, image_folder, cache_dir, backend, one_torch_thread
):
    url = (
        f"sqlite:///{tmp_path / 'budget.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    config = load_study_config(
        write_study(tmp_path, image_folder, trials=50, epochs=2, space=SPACE, pruner=ASHA)
    )
    config = dataclasses.replace(config, study=dataclasses.replace(config.study, epochs_budget=4))
    launch(config, WorkerOptions(url, "cpu", cache_dir, progress=False), workers=2)
    trials = optuna.load_study(study_name="test-study", storage=url).get_trials(deepcopy=False)
    assert {trial.state for trial in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    # Met at 4; past it only the epochs already running: a trial each worker had started
    assert 4 <= epochs_trained(trials) <= 4 - 1 + 2 * 2
    assert len({attrs.first_attempt(trial) for trial in trials}) < 50
    leftover = [path.name for path in (tmp_path / "user-checkpoints").rglob("last.pt")]
    assert not leftover, "no paused trial can be promoted once the budget is met"


def test_a_closed_promotions_checkpoint_left_by_a_killed_worker_is_removed_later(
    tmp_path, image_folder, options, one_torch_thread
):
    """The chaos run's leak: a run killed between closing a promotion in the study and removing
    its checkpoint left the file for good. The next run removes it, though it has nothing left to
    run (a worker that looks for promotions would too)."""
    config, study = paused_study(tmp_path, image_folder, options)
    finish_by_hand(study, at_rung_1=0.99)  # 4th of 4: never in the top half
    launch(config, options, trials=4)
    checkpoint = checkpoint_of_trial_0(options, study)
    assert not checkpoint.exists()
    checkpoint.parent.mkdir(parents=True)  # what the killed worker left
    checkpoint.write_bytes(b"left behind")

    launch(config, options, trials=4)
    assert not checkpoint.parent.exists()
