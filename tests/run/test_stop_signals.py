"""A worker's stop signals (search.run.stopping): the handler runs inside whatever the main thread
was doing, so it must not wait on anything the main thread may hold."""

from __future__ import annotations

import subprocess
import sys

ROUNDS = 60

# Each round the main thread waits on its stop event as a worker does (for a silent worker's
# grace, in an outage's backoff) when a SIGTERM comes: the handler set the event, whose lock the
# interrupted wait held, and the worker hung there for good (6 rounds in 10 on the old code)
WAITING_WORKER = f"""
import os, signal, sys, threading
from search.run.stopping import stop_on_signals

for _ in range({ROUNDS}):
    with stop_on_signals("text") as stop:
        threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGTERM)).start()
        while not stop.wait(0):
            pass
        print("ended", file=sys.stderr, flush=True)  # the worker's last line, once stopped
print("all stopped", flush=True)
"""


def test_a_stop_signal_never_hangs_a_worker_waiting_on_its_stop_event():
    worker = subprocess.Popen(
        [sys.executable, "-c", WAITING_WORKER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = worker.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise AssertionError(f"hung on a stop signal: {worker.communicate()}") from None
    assert worker.returncode == 0 and out == "all stopped\n", err
    # each said once, by the thread that sets the event, not inside the handler, and before the
    # event is set: a worker's last line (`worker_ended` in a JSON log) had come before it
    lines = err.splitlines()
    said = ["note" if "SIGTERM: stopping at a clean point" in line else line for line in lines]
    assert said == ["note", "ended"] * ROUNDS, err
