"""Workers: long-lived processes that load the data once and run trial after trial until the
study's budget is met. `run_worker` is one; `search.launch` starts several.

The loop is Optuna's ask and tell, with a heartbeat that survives database restarts
(search.run.liveness) and one retry policy (search.study.retries) for a killed worker, a signal
and a lost database. Before each trial a worker fails and queues every trial whose worker is
dead; before it exits, it waits out the grace period of trials whose workers went silent, so a
study is never left with a dead trial RUNNING.

A full disk (its quota spent, or read-only too) stops a worker rather than failing its trials one
by one: once a checkpoint or weights file cannot be written, it starts no trial, lets those in
flight end, and exits with one line.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from search import attrs
from search.errors import WaitStopped
from search.run import liveness, trial_files
from search.run.joining import Joined, join
from search.run.log import WorkerLog, log_warnings, out_of_space_line
from search.run.objective import (
    TRIAL_FAILURES,
    Objective,
    TrialRun,
    free_device_memory,
    long_lived_frozen,
)
from search.run.options import WorkerOptions
from search.run.progress import StudyProgress
from search.run.request import Request, requested_name
from search.run.slots import Slots
from search.run.stopping import error_stop, recording_trials, stop_words
from search.study import orphans, promotion, retries
from search.study.budget_lock import BudgetLock, new_trial_within_budget
from search.study.epochs_budget import epochs_budget_met
from search.study.opening import settle_sampler_seed
from search.study.optuna_compat import trial_id_of
from search.study.recorded import budget
from search.study.space import NoPointLeft
from search.study.storage import check_sqlite_intact, set_user_attrs
from search.studyfile import StudyConfig
from trainer import PauseAfterEpoch, TrainingStopped
from trainer.data import ImageData
from trainer.device import resolve_device
from trainer.epoch import Steps
from trainer.errors import GroupOutOfMemory, NoSpaceLeft


class WorkerSummary(NamedTuple):
    finished: int  # trials this worker ran to an end: COMPLETE, PRUNED or FAIL
    left_to_resume: int  # trials it stopped (a signal) and queued to resume from their checkpoint


def run_worker(
    request: Request,
    options: WorkerOptions,
    *,
    data: ImageData | None = None,
    create: bool = False,
    stop: threading.Event | None = None,
) -> WorkerSummary:
    """Join the study (search.run.joining) and run trials until the budget is met, the timeout
    passes or `stop` is set, which also ends a wait for the storage to answer."""
    log_warnings(options.log_format)  # an outage waited out at once is a line of the log too
    try:
        if stop is not None and stop.is_set():  # as it started: joining may decode for minutes
            raise WaitStopped("stopped before it joined the study")
        joined = join(request, options, create=create, data=data, stop=stop)
    except WaitStopped as stopped:  # before anything was done: a clean end
        log = WorkerLog(options.log_format, requested_name(request))
        log.ended(finished=0, left_to_resume=0, why=str(stopped))
        return WorkerSummary(finished=0, left_to_resume=0)
    return work(joined, options, stop=stop)


def work(
    joined: Joined, options: WorkerOptions, *, stop: threading.Event | None = None
) -> WorkerSummary:
    """Run trials of a joined study until its budget is met, the timeout passes or `stop` is set:
    what `run_worker` does once joined, and what `hpsearch run` does with the study it joined."""
    config, study = joined.config, joined.study
    stop = stop or threading.Event()
    objective = Objective(
        config, joined.data, resolve_device(options.device), stop, compile=options.compile
    )
    log = WorkerLog(options.log_format, config.study.name)
    root = joined.checkpoint_root
    folder = trial_files.study_folder(root, study)
    lock = BudgetLock(options.storage_url, study.study_name)
    worker = _Worker(config, study, joined.storage, objective, folder, stop, log, lock)
    count = options.trials_per_worker or config.study.trials_per_worker
    slots = Slots(count, stop, free_memory=lambda: free_device_memory(objective.device))
    log.started(
        options.storage_url,
        objective.device,
        joined.data,
        config.data.image_size,
        worker.me,
        slots.count,
    )
    minutes = config.study.timeout_minutes
    deadline = time.monotonic() + 60 * minutes if minutes else None

    def may_start() -> bool:  # asked before each new trial: a SIGTERM may come while one starts
        if slots.exhausted or stop.is_set() or worker.out_of_space is not None:
            return False
        return deadline is None or time.monotonic() < deadline

    progress = StudyProgress(study, budget(study, config.study.trials), enabled=options.progress)
    with progress, slots.stopped_on_error(), long_lived_frozen():
        while True:
            while slots.free and may_start() and (trial := worker.next_trial()) is not None:
                slots.start(worker.run_steps(trial))
            if slots.busy:
                slots.run_round()  # one epoch of each trial in flight; the ended free their slots
            elif not (may_start() and worker.wait_for_silent_trials()):
                break
    ended_by_timeout = deadline is not None and time.monotonic() >= deadline
    why = _why_ended(worker.out_of_space is not None, stop.is_set(), ended_by_timeout)
    log.ended(finished=worker.finished, left_to_resume=worker.left_to_resume, why=why)
    # Damage done to a SQLite file during the search, which no read or write happened to reach,
    # is reported now rather than found by the next command (tens of ms)
    check_sqlite_intact(options.storage_url)
    if worker.out_of_space is not None:
        raise NoSpaceLeft(out_of_space_line(worker.out_of_space, root, worker.left_to_resume))
    return WorkerSummary(worker.finished, worker.left_to_resume)


@dataclass
class _Worker:
    config: StudyConfig
    study: optuna.Study
    storage: optuna.storages.BaseStorage
    objective: Objective
    study_folder: Path  # this study's own folder of trial checkpoints and weights
    stop: threading.Event
    log: WorkerLog
    budget_lock: BudgetLock  # held while a new trial is counted and started, or a follow-up queued
    finished: int = 0
    left_to_resume: int = 0
    me: dict = field(default_factory=liveness.this_worker)  # recorded on every trial it runs
    waited_for: set[int] = field(default_factory=set)  # silent trials already announced
    seed_settled: bool = False  # whether this process took its first trial yet
    # The first file it could not write for lack of space or quota, or on a read-only disk
    out_of_space: str | None = None

    def next_trial(self) -> optuna.Trial | None:
        """The trial to start next (`_take_trial`), the sampler's seed settled on the first one
        this process takes, before anything is drawn for it."""
        trial = self._take_trial()
        if trial is not None and not self.seed_settled:
            settle_sampler_seed(self.study, self.config, trial)
            self.seed_settled = True
        return trial

    def _take_trial(self) -> optuna.Trial | None:
        """Nothing once the epoch budget is met; else a queued retry first, then a paused trial
        to promote, whatever the trial budget (the trial they continue counts already); else a
        new trial while the trials finished or running, this worker's other slots' among them,
        leave room in the budget and, for a points study, the queue allows."""
        # One read serves the sweep, the claim and the budget: each read fetches every unfinished
        # trial again (Optuna's cache keeps only finished ones), so it costs more with each worker.
        trials = self.study.get_trials(deepcopy=False)
        heartbeat, lock = self.config.heartbeat, self.budget_lock
        if liveness.sweep(self.study, heartbeat, trials, lock, self._dead_trial, self._orphan):
            trials = self.study.get_trials(deepcopy=False)  # with the retries just queued
        if epochs_budget_met(self.study, self.config.study.epochs_budget, trials):
            self._close_hopeless(continuing=False)
            # A retry left WAITING would keep every later run of the study waiting for it
            why = "the epoch budget was met before this retry ran"
            for first in retries.close_queued_retries(self.study, trials, why):
                trial_files.remove_trial_files(trial_files.trial_folder(self.study_folder, first))
            return None
        retry = retries.claim_retry(self.study, trials)
        if retry is not None:
            return retry
        promoted = self._promote()
        if promoted is not None:
            return promoted
        if attrs.budget_taken(trials) >= budget(self.study, self.config.study.trials):
            return None  # seen without the lock: the budget only grows by `run --trials`
        return new_trial_within_budget(
            self.study, lock, self.config.study.trials, points_only=self.config.space is None
        )

    def _dead_trial(self, trial: FrozenTrial, reason: str, retried: bool) -> None:
        checkpoint = trial_files.lineage_checkpoint(self.study_folder, trial).is_file()
        self.log.dead_trial(trial.number, reason, retried, checkpoint=checkpoint)
        if not retried:
            trial_files.remove_lineage_files(self.study_folder, trial)

    def _orphan(self, orphan: orphans.Orphan) -> None:
        self.log.orphan_recovered(orphan)
        if orphan.follow_up is None:  # out of retries: FAIL for good, as its recorder left it
            trial_files.remove_lineage_files(self.study_folder, orphan.trial)

    def _promote(self) -> optuna.Trial | None:
        """asha: close what can no longer be promoted, then claim the best promotable trial."""
        if not promotion.pauses(self.study.pruner):
            return None
        self._close_hopeless(continuing=True)
        return promotion.claim_promotion(self.study, self.study.pruner)

    def _close_hopeless(self, *, continuing: bool) -> None:
        """Remove the checkpoints of paused trials that can no longer be promoted, so that disk
        use stays bounded by the trials that still can."""
        if not promotion.pauses(self.study.pruner):
            return
        trials = self.study.get_trials(deepcopy=False)
        new_trials = budget(self.study, self.config.study.trials) - attrs.budget_spent(trials)
        closed = promotion.close_hopeless(
            self.study,
            self.study.pruner,
            max(0, new_trials) if continuing else 0,
            continuing=continuing,
        )
        trial_files.remove_closed_lineages(self.study_folder, trials, closed)

    def wait_for_silent_trials(self) -> bool:
        """With nothing left to start: wait one heartbeat interval if a RUNNING trial's worker
        went silent, as it may be dead and then its trial is resumed here, or if a trial ended
        by a worker elsewhere still lacks its follow-up (`orphans.owed`), which is queued here if
        that worker died; False if there is neither. One whose grace ran out since the last sweep
        is waited for too: the next sweep queues its follow-up (left out, it fell between the two
        reads, and the worker ended with its lineage left behind)."""
        heartbeat = self.config.heartbeat
        trials = self.study.get_trials(deepcopy=False)
        silent = liveness.silent_trials(trials, heartbeat.interval_seconds)
        due = orphans.owed(trials, heartbeat.max_retries)
        for trial in [*silent, *due]:
            if trial.number not in self.waited_for:
                self.waited_for.add(trial.number)
                self.log.waiting(trial, heartbeat.grace_seconds)
        waits = bool(silent or due)
        return waits and not self.stop.wait(heartbeat.interval_seconds)

    def run_steps(self, trial: optuna.Trial) -> Steps[bool]:
        """Train with a heartbeat, tell; False when there is nothing left to run. A coroutine of
        the trial's epochs, driven by the worker's slots (search.run.slots)."""
        run = TrialRun(
            trial_files.trial_folder(self.study_folder, retries.first_attempt(trial)),
            resume=attrs.RETRY_OF in trial.user_attrs,
            restores=trial.user_attrs.get(attrs.CONTINUES_FROM_EPOCH, 0),
        )
        trial.set_user_attr(attrs.WORKER, self.me)
        interval = self.config.heartbeat.interval_seconds
        with liveness.Heartbeat(self.storage, trial, interval):
            return (yield from self._run_and_tell(trial, run))  # its memory: freed by its slot

    def _run_and_tell(self, trial: optuna.Trial, run: TrialRun) -> Steps[bool]:
        try:
            value = yield from self.objective.steps(trial, run)
        except optuna.TrialPruned as pruned:
            self._finish(trial, run, TrialState.PRUNED, reason=str(pruned))
        except PauseAfterEpoch as pause:
            self._pause(trial, run, pause)
        except TRIAL_FAILURES:
            self._finish(trial, run, TrialState.FAIL)
        except TrainingStopped as error:  # a fused group out of memory goes on in a smaller one
            ending = not isinstance(error, GroupOutOfMemory)
            self._stopped(trial, stop_words(error, self.stop), ending=ending)
        except NoSpaceLeft as error:
            # No fault of the trial's, and the next trial would meet the same disk: stopped as by
            # a signal, so it resumes from its last checkpoint once there is space again
            self.out_of_space = self.out_of_space or str(error)
            self._stopped(trial, f"({error})")
        except NoPointLeft as error:
            trial.set_user_attr(attrs.FAIL_REASON, str(error))
            frozen = self._tell(trial, TrialState.FAIL)
            if frozen is not None:
                self.log.trial_finished(frozen)
            return False
        except UpdateFinishedTrialError:
            self._taken_away(trial)
        # A bug: record it on the trial, then stop this worker loudly
        except BaseException as error:
            how, reason = error_stop(error, self.stop)
            if reason is not None:  # none for a second Ctrl-C, which is no fault of its trial
                trial.set_user_attr(attrs.FAIL_REASON, reason)
            self._stopped(trial, how, fault=reason is not None)
            raise
        else:
            self._finish(trial, run, TrialState.COMPLETE, value)
        return True

    def _finish(
        self,
        trial: optuna.Trial,
        run: TrialRun,
        state: TrialState,
        value: float | None = None,
        reason: str | None = None,  # why the pruner stopped it
    ) -> None:
        with recording_trials(self.stop):
            frozen = self._tell(trial, state, value if state == TrialState.COMPLETE else None)
            if frozen is None:
                return
            self.finished += 1
            self.log.trial_finished(frozen, reason)
            not_saved = frozen.user_attrs.get(attrs.WEIGHTS_NOT_SAVED)
            if not_saved is not None:
                self.out_of_space = self.out_of_space or not_saved
                self.log.note(
                    f"trial {frozen.number} is COMPLETE without its weights ({not_saved}); its "
                    "value stands, and `hpsearch export` says the weights are missing"
                )
            trial_files.release(self.study, frozen, run.folder)

    def _pause(self, trial: optuna.Trial, run: TrialRun, pause: PauseAfterEpoch) -> None:
        """asha: PRUNED at a rung with its checkpoint kept, and its continuation queued. The log
        names the continuation: it takes a trial number, which the log would skip unexplained."""
        with recording_trials(self.stop):
            if not self._set_user_attrs(trial, {attrs.PAUSED_AT: pause.epoch}):  # orphans' mark
                return
            # Before its continuation is queued: no one else writes to the lineage until then
            trial_files.remove_unfinished_writes(run.folder)
            frozen = self._tell(trial, TrialState.PRUNED)
            if frozen is None:
                return
            self.finished += 1
            continuation = orphans.queue_continuation_once(self.study, self.budget_lock, frozen)
            continues = f"continues as trial {continuation} if promoted"
            self.log.trial_finished(frozen, f"{pause}; {continues}")

    def _stopped(
        self, trial: optuna.Trial, reason: str, *, fault: bool = False, ending: bool = True
    ) -> None:
        """The trial did not finish through any fault of its own: FAIL now, run again later (a
        stopped trial, attrs.stopped_numbers). `reason` follows "stopped": `in epoch 2 (SIGINT)`.
        A `fault` (a bug in its worker) counts against its lineage's retries; a stop asked for
        does not. Unless `ending` this worker, it is not among those the worker leaves to resume."""
        with recording_trials(self.stop):
            stopped, max_retries = f"stopped {reason}", self.config.heartbeat.max_retries
            marks = orphans.stop_marks(trial, stopped, fault, max_retries, self.me)
            if not self._set_user_attrs(trial, marks):
                return
            frozen = self._tell(trial, TrialState.FAIL)
            if frozen is None:
                return
            retry = orphans.queue_retry_once(
                self.study, self.budget_lock, frozen, max_retries, stopped, fault=fault
            )
            if retry is not None:
                self.left_to_resume += ending
            else:
                self.finished += 1  # out of retries: FAIL for good
                trial_files.remove_lineage_files(self.study_folder, frozen)
            checkpoint = trial_files.lineage_checkpoint(self.study_folder, frozen).is_file()
            self.log.trial_stopped(trial.number, reason, retry, checkpoint=checkpoint)

    def _tell(
        self, trial: optuna.Trial, state: TrialState, value: float | None = None
    ) -> FrozenTrial | None:
        """Tell the study how the trial ended; None if another worker failed it meanwhile, taking
        this worker for dead: its retry owns the trial's folder now, so nothing is released."""
        try:
            return self.study.tell(trial, value, state=state)
        # Optuna's answers to telling a finished trial: ValueError when its cache knows, else the
        # storage's UpdateFinishedTrialError (the chaos run's stopped-then-continued worker)
        except (ValueError, UpdateFinishedTrialError):
            if not self.storage.get_trial(trial_id_of(trial)).state.is_finished():
                raise
            self._taken_away(trial)
            return None

    def _set_user_attrs(self, trial: optuna.Trial, values: dict[str, object]) -> bool:
        """Record on a trial it is ending; False (and nothing more to do) if another worker failed
        it meanwhile, as `_tell` says."""
        try:
            set_user_attrs(trial, values)
        except UpdateFinishedTrialError:
            self._taken_away(trial)
            return False
        return True

    def _taken_away(self, trial: optuna.Trial) -> None:
        failed = self.storage.get_trial(trial_id_of(trial))
        self.log.taken_away(trial.number, failed.user_attrs.get(attrs.FAIL_REASON))


def _why_ended(out_of_space: bool, stopped: bool, timed_out: bool) -> str:
    if out_of_space:
        return "checkpoint folder full or read-only"
    if stopped:
        return "stopped"
    return "timeout" if timed_out else "nothing left to run"
