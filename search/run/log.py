"""What a worker says as it runs, one line per event, for a log read later (a file, `docker compose
logs`, a SLURM or Kubernetes log) where a progress bar that rewrites itself is only noise.

`text` lines are for people: a timestamp, then the event in words. `json` lines are for log
collectors: one object a line, with `time` (UTC, ISO 8601), `event` and the event's fields. Without
a format (a terminal, where the progress bar shows the study), only what asks for a person's
attention is printed, as it always was: failures, retries, waits.

Events: `worker_started`, `trial_finished` (one per trial this worker ends), `dead_trial` (a
trial of a dead worker failed and queued here), `trial_stopped`, `waiting` (for a silent worker),
`note` (anything else a worker must say), `warning` (what hpsearch's and trainer's loggers warn
of: an outage waited out, a missed heartbeat, a checkpoint set aside) and `worker_ended`.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from search import attrs
from search.run import liveness
from search.study.orphans import Orphan, kind_due, marked_at
from search.url_secrets import masked

if TYPE_CHECKING:  # the type alone: reading this module must not load torch
    from trainer.data import ImageData

LOG_FORMATS = ("text", "json")
WARNING_LOGGERS = ("hpsearch", "trainer")  # whose warnings `log_warnings` writes as log lines


class WorkerLog:
    """One worker's log lines, on standard error; `log_format` is "text", "json" or None. Every
    line names the study, where there is one."""

    def __init__(self, log_format: str | None, study_name: str | None):
        if log_format not in (*LOG_FORMATS, None):
            raise ValueError(f"log_format must be one of {LOG_FORMATS} or None, not {log_format!r}")
        self.log_format = log_format
        self.study_name = study_name

    def started(
        self,
        storage_url: str,
        device: object,
        data: ImageData,
        image_size: int,
        worker: dict,
        trials_at_once: int = 1,
    ) -> None:
        storage = masked(storage_url)  # a log is read by many; a password is never in it
        images = f"{len(data.train)} train / {len(data.val)} val images, {image_size} px"
        slots = f", {trials_at_once} trials at once" if trials_at_once > 1 else ""
        self._emit(
            "worker_started",
            f"worker started: study {self.study_name!r} in {storage}, device {device}, "
            f"data {data.source} ({images}), worker {liveness.describe(worker)}{slots}",
            storage=storage,
            device=str(device),
            data=data.source,
            train_images=len(data.train),
            val_images=len(data.val),
            image_size=image_size,
            worker=worker,
            trials_at_once=trials_at_once,
        )

    def trial_finished(self, trial: FrozenTrial, reason: str | None = None) -> None:
        """`reason`: why the pruner stopped it; a failure's reason is read from the trial."""
        fields = trial_fields(trial, reason)
        self._emit(
            "trial_finished",
            _trial_words(fields),
            attention=trial.state == TrialState.FAIL,
            **fields,
        )

    def dead_trial(self, number: int, reason: str, retried: bool, *, checkpoint: bool) -> None:
        """`checkpoint`: whether the lineage's checkpoint is on this machine's disk; a trial that
        died in its first epoch, or that wrote its checkpoints elsewhere, starts over."""
        resumed = (
            "queued to resume from its last checkpoint"
            if checkpoint
            else "queued to run again from epoch 1 (no checkpoint of it here)"
        )
        self._cut_short(
            "dead_trial",
            # As `status` counts it: stopped, if its lineage goes on; else failed for good
            f"trial {number} {'stopped' if retried else 'failed'}: {reason}",
            resumed if retried else None,
            trial=number,
            reason=reason,
            retried=retried,
            checkpoint=checkpoint,
        )

    def trial_stopped(
        self, number: int, reason: str, retry: int | None, *, checkpoint: bool
    ) -> None:
        """`reason` follows "stopped": `in epoch 2 (SIGINT)`; `retry`: the number of the trial
        that resumes it, named since queued trials take numbers (the log's would skip);
        `checkpoint`: whether it wrote one to resume from (not in its first epoch)."""
        resumes = "resume from its last checkpoint" if checkpoint else "run again from epoch 1"
        self._cut_short(
            "trial_stopped",
            f"trial {number} stopped {reason}",
            None if retry is None else f"queued to {resumes} as trial {retry}",
            trial=number,
            reason=reason,
            retried=retry is not None,
            retry=retry,
            checkpoint=checkpoint,
        )

    def orphan_recovered(self, orphan: Orphan) -> None:
        """A trial whose worker died between ending it and queuing its follow-up, queued now
        (search.study.orphans). One out of retries is found again at every sweep: no line."""
        if orphan.follow_up is None:
            return
        number, kind, follow_up = orphan.trial.number, orphan.kind, orphan.follow_up
        then = "resumes it from its last checkpoint"
        if kind == "continuation":
            then = "continues it from its checkpoint if promoted"
        self._emit(
            "orphan_recovered",
            f"trial {number} was left without its {kind} (its worker died before queuing it); "
            f"queued now as trial {follow_up}, which {then}",
            attention=True,
            trial=number,
            kind=kind,
            follow_up=follow_up,
        )

    def _cut_short(self, event: str, what: str, resumed: str | None, **fields: Any) -> None:
        """A trial that ended through no fault of its own, and whether it runs again."""
        self._emit(event, f"{what}; {resumed or 'out of retries'}", attention=True, **fields)

    def waiting(self, trial: FrozenTrial, grace_seconds: float) -> None:
        """For a RUNNING trial whose worker went silent, which this worker resumes if it stays so
        past the grace; or for a trial ended elsewhere whose follow-up is not queued yet."""
        if trial.state != TrialState.RUNNING:
            return self._waiting_for_follow_up(trial, grace_seconds)
        worker = trial.user_attrs.get(attrs.WORKER)
        where = f" ({liveness.describe(worker)})" if isinstance(worker, dict) else ""
        silent_since = liveness.last_beat(trial)
        until = time.strftime("%H:%M:%S", time.localtime(silent_since + grace_seconds))
        message = (
            f"waiting for trial {trial.number}: its worker{where} has sent no heartbeat for "
            f"{time.time() - silent_since:.0f} s; if it is still silent at {until}, the trial "
            "counts as dead and is resumed here"
        )
        self._emit("waiting", message, attention=True, trial=trial.number, message=message)

    def _waiting_for_follow_up(self, trial: FrozenTrial, grace_seconds: float) -> None:
        kind = kind_due(trial)
        until = time.strftime("%H:%M:%S", time.localtime(marked_at(trial) + grace_seconds))
        message = (
            f"waiting for trial {trial.number}'s {kind}: the worker that ended it may still queue "
            f"it; if none is queued by {until}, it is queued and run here"
        )
        self._emit("waiting", message, attention=True, trial=trial.number, message=message)

    def taken_away(self, number: int, reason: object) -> None:
        """A trial this worker ran that another worker failed meanwhile, taking it for dead;
        `reason`, the failure's as stored, says why (no recent heartbeat: a clock far off, or the
        database out of reach past the grace)."""
        # Read back from the storage: shown as one line of bounded length, whatever it holds
        text = reason.strip() if isinstance(reason, str) else ""
        why = text.splitlines()[0][:200] if text else "no reason recorded"
        self.note(
            f"trial {number} was failed meanwhile by another worker ({why}); its retry goes on "
            "from the checkpoint, and this worker drops the trial"
        )

    def note(self, message: str) -> None:
        # A note has no fields but its words: a JSON line without them would say nothing
        self._emit("note", message, attention=True, message=message)

    def ended(self, *, finished: int, left_to_resume: int, why: str) -> None:
        self._emit(
            "worker_ended",
            f"worker finished {finished} trial(s) of study {self.study_name!r}"
            + (f"; {left_to_resume} stopped, queued to resume" if left_to_resume else "")
            + f" ({why})",
            finished=finished,
            left_to_resume=left_to_resume,
            why=why,
        )

    def warning(self, logger: str, message: str) -> None:
        self._emit("warning", f"warning ({logger}): {message}", logger=logger, message=message)

    def _emit(self, event: str, words: str, *, attention: bool = False, **fields: Any) -> None:
        if self.log_format == "json":
            now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            study = {"study": self.study_name} if self.study_name is not None else {}
            record = {"time": now, "event": event, **study, **fields}
            line = json.dumps(record, default=str)
        elif self.log_format == "text":
            line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {words}"
        else:
            if attention:
                _write_beside_bars(words)
            return
        _write_line(line)


def last_line(log_format: str | None, event: str, message: str | None = None) -> None:
    """A command's last line on standard error: `hpsearch: error: MESSAGE` (event "error") or
    `hpsearch: interrupted`; in a JSON log, an object as its other lines are (`time`, `event`,
    `message`), or a log collector drops or misparses the line that says why the log ended."""
    if log_format == "json":
        WorkerLog(log_format, None)._emit(event, "", message=message or event)
    else:
        _write_line(f"hpsearch: {event}" + (f": {message}" if message else ""))


def _write_line(line: str) -> None:
    """`line` and its newline in one write: standard error writes straight through to a pipe or
    file that every worker of a run shares, and print's two writes (the words, then the newline)
    let another worker's line in between: two lines glued into one (two JSON objects, unparsable)
    """
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def one_line_warnings() -> None:
    """A warning on a command's standard error as one line, `hpsearch: warning: MESSAGE`, as its
    errors are: Python's own format adds the file and line that warned and that line of code
    (`search/api/training.py:116: UserWarning: ...` and a second line), nothing a user acts on."""
    warnings.formatwarning = _one_line


def _one_line(message: Warning | str, *_: object, **__: object) -> str:
    return f"hpsearch: warning: {message}\n"


class _JsonWarnings:
    """Python's warnings (warnings.warn: an image PIL warns of, a cache rebuilt) as records of a
    JSON log, as its loggers' warnings are: a plain line there breaks a log collector. Installed
    as warnings.showwarning, it keeps the one it replaced, put back for a log of another format."""

    def __init__(self, before: Any) -> None:
        self.before = before

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if sys.stderr is None:  # no standard error to write to (pythonw), as Python's own does
            return
        with suppress(OSError):  # a closed standard error: a warning is not worth a traceback
            category_name, text = category.__name__, str(message)
            log = WorkerLog("json", None)
            log._emit("warning", "", logger="py.warnings", category=category_name, message=text)


def _python_warnings_in(log_format: str | None) -> None:
    if log_format == "json":
        if not isinstance(warnings.showwarning, _JsonWarnings):
            warnings.showwarning = _JsonWarnings(warnings.showwarning)
    elif isinstance(warnings.showwarning, _JsonWarnings):
        warnings.showwarning = warnings.showwarning.before


def _write_beside_bars(line: str) -> None:
    """A line on a terminal, where a progress bar holds the current line without ending it: this
    process's bars are cleared and drawn again below the line (tqdm.write); the launcher's bar,
    which its worker processes cannot clear, is erased from the line first ("\\r", then erase to the
    end of the line) and drawn again at its next refresh. Else the line was glued to the bar."""
    erase = "\r\x1b[K" if sys.stderr.isatty() else ""
    tqdm.write(erase + line + "\n", file=sys.stderr, end="")  # one write, as _write_line
    sys.stderr.flush()


class _LogHandler(logging.Handler):
    def __init__(self, log: WorkerLog):
        super().__init__(logging.WARNING)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log.warning(record.name, record.getMessage())


def log_warnings(log_format: str | None) -> None:
    """Write the warnings of hpsearch's and trainer's loggers as lines of `log_format`, and in a
    JSON log Python's warnings too, so that it stays one object a line: one handler per logger, of
    the format asked for last (a second worker in the process replaces the first one's, so each
    warning is one line). Python's warnings in another format stay as they were shown."""
    log = WorkerLog(log_format, None)  # a format it does not know is refused before any work
    _python_warnings_in(log_format)
    for name in WARNING_LOGGERS:
        logger = logging.getLogger(name)
        _remove_log_handlers(logger)
        # Without a format (a terminal), logging's own last-resort line is what a person reads:
        # a notebook's earlier JSON search must not leave its handler to this one
        if log_format is not None:
            logger.addHandler(_LogHandler(log))


@contextmanager
def log_handlers_restored() -> Iterator[None]:
    """The handlers `log_warnings` sets inside the block, put back as they were at its start: a
    notebook's search with a `log_format` keeps its lines to itself, where its JSON handler had
    stayed and written the warnings of the notebook's later calls (a `train`'s) as JSON lines."""
    loggers = [logging.getLogger(name) for name in WARNING_LOGGERS]
    before = {
        logger: [h for h in logger.handlers if isinstance(h, _LogHandler)] for logger in loggers
    }
    try:
        yield
    finally:
        for logger, handlers in before.items():
            _remove_log_handlers(logger)
            for handler in handlers:
                logger.addHandler(handler)


def _remove_log_handlers(logger: logging.Logger) -> None:
    for handler in [h for h in logger.handlers if isinstance(h, _LogHandler)]:
        logger.removeHandler(handler)


def trial_fields(trial: FrozenTrial, reason: str | None = None) -> dict[str, Any]:
    """What a finished trial's line says: its number, state, parameters, best val top-1 (over
    the epochs it ran, pruned and failed trials too), epochs, seconds and why it ended early."""
    reported = list(trial.intermediate_values.values())
    best = trial.value if trial.state == TrialState.COMPLETE else max(reported, default=None)
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    fields = {
        "trial": trial.number,
        "state": trial.state.name,
        "params": trial.params,
        attrs.METRIC: best,
        "epochs": trial.user_attrs.get(attrs.EPOCHS_RUN),
        "seconds": round(duration, 1) if duration is not None else None,
        "reason": attrs.fail_reason(trial) if trial.state == TrialState.FAIL else reason,
    }
    if attrs.is_retry(trial):  # a continuation of a paused trial too: it is of the same lineage
        fields["retry_of"] = attrs.first_attempt(trial)
    if attrs.PROMOTION_OF in trial.user_attrs:
        fields["promotion_of"] = trial.user_attrs[attrs.PROMOTION_OF]
    return fields


def _trial_words(fields: dict[str, Any]) -> str:
    best = fields[attrs.METRIC]
    words = f"trial {fields['trial']} {fields['state']}"
    if "promotion_of" in fields:
        words += f" (promoted from trial {fields['promotion_of']})"
    elif "retry_of" in fields:
        words += f" (a retry of trial {fields['retry_of']})"
    words += f": best val top-1 {best:.2%}" if best is not None else ": no epoch scored"
    if fields["epochs"] is not None:
        words += f" in {fields['epochs']} epoch(s)"
    if fields["seconds"] is not None:
        words += f", {fields['seconds']:.0f} s"
    if fields["reason"]:
        words += f" ({fields['reason']})"
    return words + f"; {attrs.settings_text(fields['params'])}"


def out_of_space_line(first: str, root: Path, left_to_resume: int) -> str:
    """The line a worker stopped by a full or read-only checkpoint folder ends with (`first`: the
    file it could not write), and how many trials it stopped, queued to resume."""
    stopped = (
        f"; {left_to_resume} trial(s) it stopped are queued to resume from their last checkpoint"
        if left_to_resume
        else ""
    )
    return (
        f"{first}: this worker started no more trials{stopped}. Free space in {root}, or make it "
        "writable (or move that folder to a larger disk), and run again"
    )
