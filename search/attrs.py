"""Every attribute hpsearch stores on a trial or a study, and the few readers built on them.

Trials and studies outlive the code that wrote them and are read by other processes (status,
report, export, the dashboard), so each key is spelled once, here. The readers answer the
questions every one of those asks the same way: a trial's configuration, the best trial,
how many trials are in each state and how many count against the budget.
"""

from __future__ import annotations

import copy
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

# --- a trial's user attributes --------------------------------------------------------------------
CONFIG = "config"  # the whole TrainConfig the trial trained with, fixed settings included
# What a trial trained whose config names no model: it ran before a run could name one. History,
# so not the trainer's default, which may change.
UNRECORDED_MODEL = "resnet18"
FAIL_REASON = "fail_reason"  # why a FAIL failed, in words
HISTORY = "history"  # one dict of EpochMetrics per epoch
EPOCHS_RUN = "epochs_run"
BEST_EPOCH = "best_epoch"
SECONDS = "seconds"  # training and evaluation, summed over the epochs it trained (not restored)
IMAGES_PER_SECOND = "images_per_second"  # training images, mean over the epochs it trained
DEVICE = "device"
COMPILED = "compiled"  # trained through torch.compile
CHECKPOINT_SECONDS = "checkpoint_seconds"  # writing checkpoints and weights
CODE_VERSION = "code_version"
# Where the kept final weights of a complete trial were written, for people to read. Files are
# found from the study's identity and the trial's number (run.trial_files), never from this.
WEIGHTS = "weights_path"
# Why a complete trial has no final weights (the disk was full when they were written): its value
# stands, and `export` says the weights are missing
WEIGHTS_NOT_SAVED = "weights_not_saved"
RESUMED_FROM_EPOCH = "resumed_from_epoch"  # epochs a retry restored from its checkpoint
QUEUED_AS = "queued_as"  # a trial queued from the study file: "points[2]", "warm_start[0]"
RETRY_OF = "retry_of"  # the first attempt's trial number; names the checkpoint folder
RETRIED_FROM = "retried_from"  # the attempt a retry continues
ATTEMPT = "attempt"  # 1 for the first retry
# The attempts of a lineage cut short by a fault (its worker died, a bug), which [heartbeat]
# max_retries bounds; a stop asked for (a signal, a scheduler's time limit, a full disk) is none
FAULTS = "faults"
RETRY_REASON = "retry_reason"  # why the attempt before this one did not finish
# A trial cut short records, before it ends FAIL, that a retry is due ({"reason", "fault",
# "max_retries", "by": the recording worker}): a recorder killed between that FAIL and queuing the
# retry left the lineage to nothing, and this tells a later worker to queue it
# (search.study.orphans). A paused trial's PAUSED_AT serves so for its continuation.
RETRY_DUE = "retry_due"
WORKER = "worker"  # the process running the trial: host, pid, start time, scheduler ids
# asha: a trial that paused at a rung ends PRUNED with PAUSED_AT (the rung, in epochs) and leaves
# a WAITING continuation (PROMOTION_OF: the paused trial's number) that a worker claims to promote
# it, or closes (PROMOTION_CLOSED: why) once it can no longer be promoted
PAUSED_AT = "paused_at_epoch"
PROMOTION_OF = "promotion_of"
PROMOTION_CLOSED = "promotion_closed"
# A follow-up (retry or continuation) queued a second time for one trial, which two workers did at
# once: closed FAIL without running, it names the follow-up that runs instead (search.study.orphans)
DUPLICATE_OF = "duplicate_of"
# A continuation: the epoch its paused trial paused at, which the checkpoint it resumes from holds
CONTINUES_FROM_EPOCH = "continues_from_epoch"
# A promoted trial whose checkpoint was gone or unreadable, so it retrained those epochs: why
CHECKPOINT_LOST = "checkpoint_lost"

# --- a trial's system attributes (any storage carries them, the gRPC proxy included) -------------
HEARTBEAT = "hpsearch:heartbeat"  # seconds since the epoch of the worker's last beat
# The call that created the trial (a random name): a retried creation whose first attempt's commit
# was made finds that trial instead of making another (search.study.optuna_compat.TrialsCreatedOnce)
CREATION = "hpsearch:creation"

METRIC = "val_top1"  # the study's one objective: the best val top-1 (0..1) over a trial's epochs

# --- a study's user attributes --------------------------------------------------------------------
STUDY_ID = "study_id"  # unique per study, whatever its name or storage: keys its files
STUDY_CONFIG = "study_config"  # the whole resolved study file it was created with (a document)
BUDGET = "budget"  # trials over all workers; `run --trials` changes it and every worker reads it
# The space, fixed training settings and points of a study created before STUDY_CONFIG existed
SPACE = "space"
DATA_FINGERPRINT = "data_fingerprint"  # classes, image counts and size every worker must match
DATA_SOURCE = "data_source"  # the data as the creator named it, for export

# Where optuna.artifacts.upload_artifact records a study's artifacts (a system attribute).
ARTIFACTS_PREFIX = "artifacts:"

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def trial_config(trial: FrozenTrial) -> dict[str, Any]:
    """The settings the trial trained with: its whole configuration, or (a trial that hpsearch did
    not run) its Optuna params. A points study fixes some factors, so params alone miss them."""
    config = trial.user_attrs.get(CONFIG)
    if not isinstance(config, dict):
        return dict(trial.params)
    return {**config, "model": config.get("model", UNRECORDED_MODEL)}


def fail_reason(trial: FrozenTrial) -> str | None:
    """Ours, else the one Optuna records for an exception in `study.optimize`."""
    return trial.user_attrs.get(FAIL_REASON) or trial.system_attrs.get(FAIL_REASON)


def lineage_seconds(trial: FrozenTrial) -> float | None:
    """What the trial's `epochs_run` cost: every epoch of its history, those an earlier attempt
    trained and it restored included (SECONDS is this attempt's alone, so that a sum over trials
    counts each epoch once). None where neither holds seconds (another tool's study)."""
    history = trial.user_attrs.get(HISTORY)
    if isinstance(history, list) and history:
        epochs = [epoch.get("seconds") if isinstance(epoch, dict) else None for epoch in history]
        counted = [seconds for seconds in epochs if is_seconds(seconds)]
        if len(counted) == len(epochs):
            return float(sum(counted))
    own = trial.user_attrs.get(SECONDS)
    return float(own) if is_seconds(own) else None


def is_seconds(value: Any) -> TypeGuard[float]:
    """A duration as hpsearch records one: a finite number, not below 0 (True is no number)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value >= 0


def ranked(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The complete trials, best first; among equal values the earlier trial ranks first."""
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    return sorted(complete, key=lambda trial: (-complete_value(trial), trial.number))


def complete_value(trial: FrozenTrial) -> float:
    """A complete trial's value (METRIC); a trial in any other state has none."""
    if trial.value is None:
        raise ValueError(
            f"trial {trial.number} is {trial.state.name}, not COMPLETE: it has no value to compare"
        )
    return trial.value


def best_trial(trials: Iterable[FrozenTrial]) -> FrozenTrial | None:
    """The trial every command calls best, or None before one completes."""
    order = ranked(trials)
    return order[0] if order else None


def state_counts(trials: Iterable[FrozenTrial]) -> dict[str, int]:
    """Trials per state, every state named in lower
    case (complete, pruned, fail, running, waiting)."""
    counts = {state.name.lower(): 0 for state in TrialState}
    for trial in trials:
        counts[trial.state.name.lower()] += 1
    return counts


def is_paused(trial: FrozenTrial) -> bool:
    """asha: a trial that paused at a rung, PRUNED with PAUSED_AT. A worker records PAUSED_AT just
    before it tells the study, so a RUNNING trial may carry it a moment (seconds, on a busy SQLite
    file): it still runs; counted as paused then, it made the progress line read `pruned -1`."""
    return trial.state == TrialState.PRUNED and PAUSED_AT in trial.user_attrs


def stopped_numbers(trials: Iterable[FrozenTrial]) -> set[int]:
    """The trials that were *stopped*, not failed: FAIL trials that a retry continues.

    Optuna has no state for a trial cut short to resume later, so it ends FAIL and a retry (a new
    trial) resumes it from its checkpoint. Whether it resumes is the one rule that tells the two
    apart, since the retry policy (search.study.retries) is what judges a cut short no fault of
    the trial's: a signal (Ctrl-C, SIGTERM), a full disk, a bug in its worker, a worker that died
    or fell silent (liveness: "is gone", "no heartbeat"; killed, or its machine lost) are all
    retried, while a trial whose own training failed (a diverging loss, out of memory) never is.
    A FAIL trial without a retry failed for good, its retries spent ones included: nothing
    resumes it. The words of a fail reason are no rule: they differ by cause and by version."""
    trials = list(trials)
    resumed = {stored_number(trial, RETRIED_FROM) for trial in trials}
    return {
        trial.number
        for trial in trials
        if trial.state == TrialState.FAIL and trial.number in resumed
    }


def first_attempt(trial: Trial | FrozenTrial) -> int:
    """The number of the trial a retry continues; a trial that is no retry is its own first."""
    retry_of = stored_number(trial, RETRY_OF)
    return trial.number if retry_of is None else retry_of


def stored_number(trial: Trial | FrozenTrial, key: str) -> int | None:
    """The trial number or epoch count that `key` holds, or None: what the storage holds is read
    as written by hpsearch only when it is an integer (another tool may write any JSON there)."""
    value = trial.user_attrs.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def epochs_done(trial: FrozenTrial) -> int:
    """The epochs a running trial has trained: a retry's restored ones from its start, though it
    reports them again one by one as it resumes (for seconds: "epoch 60/300" of one resumed at
    241)."""
    return max(len(trial.intermediate_values), stored_number(trial, RESUMED_FROM_EPOCH) or 0)


def is_retry(trial: FrozenTrial) -> bool:
    return RETRY_OF in trial.user_attrs


def budget_spent(trials: list[FrozenTrial]) -> int:
    """Trials that count against the budget: each first attempt once, as soon as it or a retry of
    it has finished (COMPLETE, PRUNED or FAIL). A trial stopped and queued to resume thus counts
    while its retry waits, so other workers do not start a new trial in its place."""
    return len({first_attempt(trial) for trial in trials if trial.state in FINISHED})


def budget_taken(trials: list[FrozenTrial]) -> int:
    """Trials that the budget leaves no room beside: those that count (`budget_spent`) and those
    running, each lineage once. A worker starts a new trial only below it, so a worker of several
    slots never starts more than the budget, nor several workers more than those racing to start.
    """
    taken = (*FINISHED, TrialState.RUNNING)
    return len({first_attempt(trial) for trial in trials if trial.state in taken})


def settings_text(settings: dict[str, Any]) -> str:
    """`optimizer=ranger, lr=0.008, ...`: a configuration in one line, unset settings left out,
    numbers to three significant digits."""
    return ", ".join(
        f"{name}={format_setting(name, value)}"
        for name, value in settings.items()
        if value is not None
    )


def format_setting(name: str, value: Any) -> str:
    # A sampled momentum is 0.07032569761590807; three digits tell trials apart. The exact value
    # stays in the study and in every export.
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# --- a trial's creation, tagged with CREATION -----------------------------------------------------


@dataclass
class Creation:
    """One call's creation of a trial, over its attempts: the name every attempt tags the trial
    with, and how many attempts began."""

    name: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempts: int = 0

    @classmethod
    def of(cls, template: FrozenTrial | None) -> Creation:
        """The creation of a trial from `template`: under the name it is tagged with already (a
        client of the gRPC proxy names its creations, to find them again itself), else a new one."""
        name = template.system_attrs.get(CREATION) if template is not None else None
        return cls(name) if isinstance(name, str) else cls()


def template_of_new_trial(template: FrozenTrial | None) -> FrozenTrial:
    """A copy of `template` to tag, or for none the trial Optuna makes then: RUNNING from now."""
    if template is not None:
        return copy.deepcopy(template)
    return optuna.trial.create_trial(state=TrialState.RUNNING)
