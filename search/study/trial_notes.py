"""Trial notes for the dashboard: what a pause, a promotion and a retry did to a trial, in words,
with links between the trials they join.

Optuna has no state for a paused trial nor for one stopped to resume: the dashboard draws the
first as Pruned and the second as Fail, and the trial that continues either as a new trial that
reports its first epochs again. The user attributes say what happened (`paused_at_epoch`,
`promotion_of`, `retry_of`), but only to a reader who knows them; a note says it on the trial's
page. Each note is written when its trial's story is known, by the process that made it so:

- a paused trial, when its continuation is queued (search.study.promotion);
- a trial stopped to resume, when its retry is queued (search.study.retries);
- a continuation or a retry, once it has restored its checkpoint (search.run.objective);
- a continuation closed unpromoted, when it is closed (search.study.promotion);
- a follow-up queued twice, when the second is closed (search.study.orphans).

A continuation that pauses again, or a retry stopped again, gets its second section below its
first: a note is built from the trial's attributes, never read back from the storage.

The note is written straight into the study's system attributes, as optuna-dashboard stores it
(its `_note` module: the body in chunks `dashboard:{trial_id}:note_str:{i}`, then its version
`dashboard:{trial_id}:note_ver`), rather than through `optuna_dashboard.save_note`, which reads
every system attribute of the study twice to write one note (every other trial's note among them)
and bumps the version it read, so that a write retried after a lost commit would count twice.
Here the version is the number of sections, so writing a note again writes the same values: two
writes a note, whatever the study's size. tests/study/test_trial_notes.py reads them back through
optuna_dashboard's public `get_note`, so a change of that format fails there.

A note is a courtesy: one that cannot be written is a warning in the worker's log, never a
failed trial.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from search.attrs import (
    ATTEMPT,
    CHECKPOINT_LOST,
    CONTINUES_FROM_EPOCH,
    PAUSED_AT,
    PROMOTION_OF,
    RESUMED_FROM_EPOCH,
    RETRIED_FROM,
    RETRY_OF,
    RETRY_REASON,
)
from search.study.optuna_compat import storage_of, study_id_of, trial_id_of
from search.study.resilience import first_line

logger = logging.getLogger("hpsearch.notes")
# optuna-dashboard's longest system attribute value, the size of a note's chunks
CHUNK_CHARS = 2045


def note_on_pause(
    study: optuna.Study, paused: FrozenTrial, continuation: int, reduction_factor: int | None
) -> None:
    """The note of a trial that paused at a rung, `continuation` queued to continue it."""
    epoch = paused.user_attrs[PAUSED_AT]
    value = paused.intermediate_values.get(epoch)
    score = f", {value:.2%}," if value is not None else ""
    top = f"the top 1/{reduction_factor}" if reduction_factor else "the top"
    _save(
        study,
        paused,
        [
            *_began(study, paused.user_attrs),
            _section(
                f"**Paused at epoch {epoch}** (asha); the dashboard shows it as Pruned.",
                f"Its val top-1 there{score} ranked below {top} of the trials at epoch {epoch}.",
                f"Its checkpoint is kept: {trial_link(study, continuation)} waits to continue it "
                f"from epoch {epoch + 1}.",
                f"Promoted (trial {continuation} runs) once it ranks in {top} as more trials "
                f"reach epoch {epoch};",
                f"closed (trial {continuation} ends Pruned, never trained) once it no longer can.",
            ),
        ],
    )


def note_on_stop(study: optuna.Study, stopped: FrozenTrial, retry: int, reason: str) -> None:
    """The note of a trial cut short through no fault of its own, `retry` queued to resume it."""
    stopped_text = _section(
        f"**Cut short, to resume**: {reason}.",
        "The dashboard shows it as Fail, though no fault of the trial's.",
        f"{trial_link(study, retry)} resumes it from its last checkpoint.",
    )
    _save(study, stopped, [*_began(study, stopped.user_attrs), stopped_text])


def note_on_resume(study: optuna.Study, trial: optuna.Trial) -> None:
    """The note of a continuation or a retry once it restored its checkpoint (or found none)."""
    _save(study, trial, _began(study, trial.user_attrs))


def note_on_close(study: optuna.Study, closed: FrozenTrial, rung: int, why: str) -> None:
    """The note of a paused trial's continuation closed without running: never promoted."""
    paused = closed.user_attrs[PROMOTION_OF]
    closed_text = _section(
        f"**Not promoted**: this trial, queued to continue {trial_link(study, paused)}, never "
        "trained.",
        f"Trial {paused}, paused at epoch {rung}, {why}.",
        "Its checkpoint was removed.",
    )
    _save(study, closed, [closed_text])


def note_on_duplicate(study: optuna.Study, closed: FrozenTrial, continued: int, first: int) -> None:
    """The note of a follow-up closed without running: another was queued for its trial first."""
    closed_text = _section(
        f"**Not run**: this trial, queued to continue {trial_link(study, continued)}, never "
        "trained: two workers queued a follow-up of it at once.",
        f"{trial_link(study, first)}, queued first, continues it instead.",
    )
    _save(study, closed, [closed_text])


def trial_link(study: optuna.Study, number: int) -> str:
    """A Markdown link to the trial's page in the dashboard (served at its root, as
    `hpsearch dashboard` serves it)."""
    return f"[trial {number}](/dashboard/studies/{study_id_of(study)}/trials?numbers={number})"


def _section(heading: str, *lines: str) -> str:
    """A heading line and short lines below it, each a line of its own on the page: the
    dashboard widens a trial's page to its longest attribute (the whole `config`), and a
    paragraph as wide would run past the screen's edge."""
    return "  \n".join((heading, *lines))


def _began(study: optuna.Study, user_attrs: Mapping[str, Any]) -> list[str]:
    """How a continuation or a retry began, from its attributes; nothing for a first attempt."""
    if RETRY_OF not in user_attrs:
        return []
    restored = user_attrs.get(RESUMED_FROM_EPOCH, 0)
    if PROMOTION_OF in user_attrs:
        paused = user_attrs[PROMOTION_OF]
        paused_at = user_attrs.get(CONTINUES_FROM_EPOCH, restored)
        heading = f"**Promotion of {trial_link(study, paused)}**, paused at epoch {paused_at}."
        why = f"Trial {paused} now ranks in the top of the trials at epoch {paused_at}."
    else:
        retried_from = user_attrs.get(RETRIED_FROM, user_attrs[RETRY_OF])
        reason = str(user_attrs.get(RETRY_REASON, "")).removeprefix(f"trial {retried_from}: ")
        attempt = user_attrs.get(ATTEMPT, 1)
        heading = f"**Retry of {trial_link(study, retried_from)}** (attempt {attempt})."
        why = f"Trial {retried_from} was cut short: {reason}."
    return [_section(heading, why, _resumed_text(user_attrs, restored))]


def _resumed_text(user_attrs: Mapping[str, Any], restored: int) -> str:
    if CHECKPOINT_LOST in user_attrs:
        return (
            f"Its checkpoint was not found (see `{CHECKPOINT_LOST}`): this trial trained again "
            f"from epoch {restored + 1}."
        )
    if not restored:
        return "No checkpoint was left to resume from: this trial trained from epoch 1."
    earlier = "Epoch 1 was" if restored == 1 else f"Epochs 1–{restored} were"
    return (
        f"{earlier} restored from the checkpoint and reported again; this trial trained from "
        f"epoch {restored + 1}."
    )


def _save(study: optuna.Study, trial: FrozenTrial | optuna.Trial, sections: list[str]) -> None:
    if not sections:
        return
    body = "\n\n".join(sections)
    storage, study_id, trial_id = storage_of(study), study_id_of(study), trial_id_of(trial)
    prefix = f"dashboard:{trial_id}:note_str:"
    try:
        # The body first: the dashboard shows no note until its version exists
        for index, start in enumerate(range(0, len(body), CHUNK_CHARS)):
            storage.set_study_system_attr(
                study_id, f"{prefix}{index}", body[start : start + CHUNK_CHARS]
            )
        storage.set_study_system_attr(study_id, f"dashboard:{trial_id}:note_ver", len(sections))
    except Exception as error:  # noqa: BLE001 - a note must never fail the trial it describes
        logger.warning(
            "trial %d: its dashboard note was not written (%s); its user attributes say the same",
            trial.number,
            first_line(error),
        )
