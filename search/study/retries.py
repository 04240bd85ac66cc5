"""One retry policy for every way a trial can be cut short: a killed worker (its heartbeat went
stale), a signal (the worker stopped at a clean point) or a lost database (the heartbeat lapsed).

A retry is a new trial queued with the same parameters; it carries the number of the first
attempt, which names the checkpoint folder it resumes from, and the number of the attempt it
continues, which takes that attempt out of the budget count.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial

from search.attrs import ATTEMPT, QUEUED_AS, RETRIED_FROM, RETRY_OF, RETRY_REASON


def first_attempt(trial: optuna.Trial | FrozenTrial) -> int:
    return trial.user_attrs.get(RETRY_OF, trial.number)


def queue_retry(study: optuna.Study, trial: FrozenTrial, max_retries: int, reason: str) -> bool:
    """Queue `trial` to run again unless it has used its retries; True when queued."""
    attempt = trial.user_attrs.get(ATTEMPT, 0) + 1
    if attempt > max_retries:
        return False
    user_attrs = {
        RETRY_OF: first_attempt(trial),
        RETRIED_FROM: trial.number,
        ATTEMPT: attempt,
        RETRY_REASON: f"trial {trial.number}: {reason}",
    }
    if QUEUED_AS in trial.user_attrs:
        user_attrs[QUEUED_AS] = trial.user_attrs[QUEUED_AS]
    study.enqueue_trial(trial.params, user_attrs=user_attrs)
    return True


def stale_trial_callback(max_retries: int):
    """For the storage's heartbeat: a trial whose worker went silent is FAIL, then retried."""

    def retry_stale(study: optuna.Study, trial: FrozenTrial) -> None:
        queue_retry(
            study,
            trial,
            max_retries,
            "its worker stopped sending heartbeats (killed, or its machine lost)",
        )

    return retry_stale
