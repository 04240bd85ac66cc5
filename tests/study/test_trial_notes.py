"""The dashboard notes that say what asha's pauses and promotions and a retry did to a trial, read
back through optuna_dashboard's own API, as the dashboard reads them.

The trials here are made by hand, as in test_promotion.py; the searches that train and write
these notes from a worker are in tests/run/test_asha.py and tests/run/test_stopped_trials.py.
"""

from __future__ import annotations

import logging

import optuna
from optuna.trial import TrialState

from search import attrs
from search.study import promotion, retries
from search.study.optuna_compat import storage_of
from search.study.promotion import AshaPruner
from search.study.storage import open_storage
from search.study.trial_notes import note_on_pause, note_on_resume, trial_link
from tests.helpers.made_trials import add_rung_1_trial
from tests.helpers.notes import trial_note


def asha_study(tmp_path) -> optuna.Study:
    return optuna.create_study(
        study_name="asha",
        storage=open_storage(f"sqlite:///{tmp_path / 'asha.db'}", create=True),
        direction="maximize",
        pruner=AshaPruner(min_epochs=1, reduction_factor=2, epochs=4),
    )


def by_number(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    return study.get_trials(deepcopy=False)[number]


def test_a_paused_trial_and_its_closed_continuation_name_each_other_and_say_what_happened(
    tmp_path,
):
    study = asha_study(tmp_path)
    add_rung_1_trial(study, 0.9)
    paused = add_rung_1_trial(study, 0.4, **{attrs.PAUSED_AT: 1})
    continuation = promotion.queue_continuation(study, paused)

    note = trial_note(study, paused)
    link = f"[trial {continuation}](/dashboard/studies/{study._study_id}/trials?numbers=2)"
    assert note.splitlines() == [
        "**Paused at epoch 1** (asha); the dashboard shows it as Pruned.  ",
        "Its val top-1 there, 40.00%, ranked below the top 1/2 of the trials at epoch 1.  ",
        f"Its checkpoint is kept: {link} waits to continue it from epoch 2.  ",
        "Promoted (trial 2 runs) once it ranks in the top 1/2 as more trials reach epoch 1;  ",
        "closed (trial 2 ends Pruned, never trained) once it no longer can.",
    ]
    assert trial_note(study, by_number(study, continuation)) == "", "no note while it waits"

    # 3rd of 3: the top half is one trial, and nothing else may reach the rung
    add_rung_1_trial(study, 0.8)
    assert promotion.close_hopeless(study, study.pruner, new_trials_possible=0) == [1]
    assert trial_note(study, by_number(study, continuation)).splitlines() == [
        f"**Not promoted**: this trial, queued to continue {trial_link(study, 1)}, never "
        "trained.  ",
        "Trial 1, paused at epoch 1, can no longer rank in the top of its rung.  ",
        "Its checkpoint was removed.",
    ]


def test_a_promotion_that_pauses_again_keeps_how_it_began_above_its_pause(tmp_path):
    study = asha_study(tmp_path)
    paused = add_rung_1_trial(study, 0.9, **{attrs.PAUSED_AT: 1})
    promotion.queue_continuation(study, paused)
    claimed = promotion.claim_promotion(study, study.pruner)  # the best at its rung: promoted
    assert claimed is not None
    claimed.set_user_attr(attrs.RESUMED_FROM_EPOCH, 1)
    note_on_resume(study, claimed)
    began = (
        f"**Promotion of {trial_link(study, 0)}**, paused at epoch 1.  \n"
        "Trial 0 now ranks in the top of the trials at epoch 1.  \n"
        "Epoch 1 was restored from the checkpoint and reported again; this trial trained from "
        "epoch 2."
    )
    assert trial_note(study, claimed) == began

    claimed.report(0.9, 1)
    claimed.report(0.5, 2)
    claimed.set_user_attr(attrs.PAUSED_AT, 2)
    again = study.tell(claimed, state=TrialState.PRUNED)
    promotion.queue_continuation(study, again)
    note = trial_note(study, again)
    assert note.startswith(f"{began}\n\n**Paused at epoch 2** (asha)")
    assert "Its val top-1 there, 50.00%, ranked below" in note


def test_a_note_written_again_writes_the_same_values(tmp_path):
    """A write retried after its commit's answer was lost leaves the note as it was: the version
    is the note's number of sections, not one more than the last read."""
    study = asha_study(tmp_path)
    paused = add_rung_1_trial(study, 0.4, **{attrs.PAUSED_AT: 1})
    continuation = promotion.queue_continuation(study, paused)
    before = storage_of(study).get_study_system_attrs(study._study_id)
    note_on_pause(study, paused, continuation, 2)
    assert storage_of(study).get_study_system_attrs(study._study_id) == before
    assert before[f"dashboard:{paused._trial_id}:note_ver"] == 1


def test_a_trial_cut_short_names_its_retry_and_the_retry_what_it_resumed(tmp_path):
    study = asha_study(tmp_path)
    first = study.ask()
    first.suggest_float("x", 0, 1)
    stopped = study.tell(first, state=TrialState.FAIL)
    retry = retries.queue_retry(study, stopped, 2, "its worker (host a, pid 7) is gone")
    assert trial_note(study, stopped).splitlines() == [
        "**Cut short, to resume**: its worker (host a, pid 7) is gone.  ",
        "The dashboard shows it as Fail, though no fault of the trial's.  ",
        f"{trial_link(study, 1)} resumes it from its last checkpoint.",
    ]
    claimed = retries.claim_retry(study)
    assert claimed is not None and claimed.number == retry
    note_on_resume(study, claimed)  # its checkpoint held no epoch
    assert trial_note(study, claimed).splitlines() == [
        f"**Retry of {trial_link(study, 0)}** (attempt 1).  ",
        "Trial 0 was cut short: its worker (host a, pid 7) is gone.  ",
        "No checkpoint was left to resume from: this trial trained from epoch 1.",
    ]


def test_a_note_that_cannot_be_written_is_a_warning_not_a_failed_trial(tmp_path, caplog):
    study = asha_study(tmp_path)
    paused = add_rung_1_trial(study, 0.4, **{attrs.PAUSED_AT: 1})
    optuna.delete_study(study_name="asha", storage=storage_of(study))  # gone under the worker
    with caplog.at_level(logging.WARNING, logger="hpsearch.notes"):
        note_on_pause(study, paused, 1, 2)
    assert "trial 0: its dashboard note was not written (" in caplog.text
