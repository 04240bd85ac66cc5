"""How a worker is asked to stop: SIGINT or SIGTERM sets its stop event, which says what set it, so
a stopped trial's log line and fail reason name the signal (`stopped in epoch 2 (SIGINT)`)."""

from __future__ import annotations

import itertools
import queue
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from search.run.log import WorkerLog
from trainer import TrainingStopped
from trainer.errors import GroupOutOfMemory

# A stop's line waits on standard error at worst (a full pipe): the worker's end does not wait on it
ANNOUNCER_EXIT_SECONDS = 5.0


class StopRequest(threading.Event):
    """A worker's stop event that says what set it (a signal's name), for the stopped trials'
    log lines and fail reasons."""

    def __init__(self) -> None:
        super().__init__()
        self.cause: str | None = None
        # A second Ctrl-C: out at once, through whatever was running (torch.save turns the
        # KeyboardInterrupt raised in its writer into a RuntimeError)
        self.forced = False
        self._recording = 0  # depth of `recording_trials` blocks the main thread is in
        self._interrupt_held = False  # a second Ctrl-C that came in one, raised as it ends

    def request(self, cause: str) -> None:
        self.cause = self.cause or cause
        self.set()

    def hold_interrupt(self) -> bool:
        """Called by the second Ctrl-C's handler: whether it waits for the end of the block of
        `recording_trials` the main thread is in (once: a third Ctrl-C is out at once, even there,
        should the storage hang)."""
        if self._recording == 0 or self._interrupt_held:
            return False
        self._interrupt_held = True
        return True

    @contextmanager
    def recording(self) -> Iterator[None]:
        self._recording += 1
        try:
            yield
        finally:
            self._recording -= 1  # before the check: a Ctrl-C that comes between raises itself
            if self._recording == 0 and self._interrupt_held:
                self._interrupt_held = False
                raise KeyboardInterrupt


@contextmanager
def stop_on_signals(log_format: str | None = None) -> Iterator[StopRequest]:
    """SIGINT or SIGTERM sets the event, so the worker stops at a clean point and exits 0; a second
    SIGINT (a second Ctrl-C) exits at once, or as the trials' records it came amid are whole
    (`recording_trials`). What it says is a line of the workers' `log_format`."""
    log = WorkerLog(log_format, None)
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    # The handler runs in the main thread between any two bytecodes, inside whatever it was doing:
    # a write to standard error (a print there is a reentrant call into that writer, which
    # Python may refuse) or an Event's lock (set() there waited on itself forever). So it only
    # counts and queues, with calls that are one step in C; a thread of its own sets the event
    # and says so.
    interrupts = itertools.count()
    signals: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and next(interrupts) > 0:
            stop.forced = True
            if not stop.hold_interrupt():
                raise KeyboardInterrupt
            return
        signals.put(signum)

    def announce() -> None:
        while (signum := signals.get()) is not None:
            if stop.is_set():  # the SIGTERM `run` passes on beside the terminal's SIGINT, in
                continue  # either order, is one request
            # Said before the event is set: once set, the worker may end and write its last line
            # (`worker_ended`), which a line of this thread's must not follow
            log.note(
                f"{signal.Signals(signum).name}: stopping at a clean point; each trial in "
                "flight is queued to resume (Ctrl-C again to exit now)"
            )
            stop.request(signal.Signals(signum).name)

    announcer = threading.Thread(target=announce, name="hpsearch-stop-signals", daemon=True)
    announcer.start()
    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signals.put(None)
        announcer.join(timeout=ANNOUNCER_EXIT_SECONDS)


@contextmanager
def recording_trials(stop: threading.Event | None) -> Iterator[None]:
    """A block that records how trials ended in steps that belong together (told FAIL, then its
    retry queued): a second Ctrl-C that comes inside waits for its end, else a stopped trial was
    left FAIL with no retry, its lineage lost for good (a failure, not a stop, to every count)."""
    if not isinstance(stop, StopRequest):
        yield
        return
    with stop.recording():
        yield


def interrupted_at_once(stop: threading.Event | None) -> bool:
    """Whether a second Ctrl-C asked `stop`'s worker to exit at once, through whatever it ran."""
    return isinstance(stop, StopRequest) and stop.forced


def error_stop(error: BaseException, stop: threading.Event | None) -> tuple[str, str | None]:
    """How a trial an error cut short is told stopped (`by RuntimeError in its worker`), and the
    error as its fail reason: a fault of its trial's. For a second Ctrl-C, `at once by a second
    Ctrl-C` and no reason of its own, no fault: torch.save turns the KeyboardInterrupt into a
    RuntimeError of the write it cut short ("unexpected pos"), which only misleads as a reason."""
    if interrupted_at_once(stop):
        return "at once by a second Ctrl-C", None
    return f"by {type(error).__name__} in its worker", f"{type(error).__name__}: {error}"


def stop_words(stopped: TrainingStopped, stop: threading.Event) -> str:
    """`in epoch 2 (SIGINT)`: when a trial was stopped, and by what."""
    if isinstance(stopped, GroupOutOfMemory):  # its worker goes on, in smaller groups
        return f"in epoch {stopped.epoch} ({stopped})"
    if not stop.is_set():  # search.run.slots stops a worker's other trials when one raised
        return f"in epoch {stopped.epoch} (its worker stopped on an error)"
    cause = stop.cause if isinstance(stop, StopRequest) else None
    return f"in epoch {stopped.epoch} ({cause or 'on request'})"
