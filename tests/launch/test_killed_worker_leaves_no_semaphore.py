"""A local worker killed by SIGKILL (the out-of-memory killer, a `kill -9`) leaves nothing for
multiprocessing's resource tracker to clean up: with tqdm's default lock, a named semaphore the
worker made, `run` ended with "resource_tracker: There appear to be 1 leaked semaphore objects".

A real forkserver worker, as `run` starts them, makes an epoch's progress bar as trainer.epoch
does (off, as in every local worker), and is killed; the launcher's tracker speaks as the launcher
ends."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

LAUNCHER = """
import multiprocessing, os, signal, sys


def worker(own_lock):
    from search.launch.local import own_bar_lock
    from trainer.epoch import tqdm  # the epoch's bar, as trainer.epoch draws it

    if own_lock:
        own_bar_lock()
    tqdm(range(3), desc="epoch 1/2", disable=True)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    process = multiprocessing.get_context("forkserver").Process(
        target=worker, args=(sys.argv[1] == "own",)
    )
    process.start()
    process.join()
    assert process.exitcode == -signal.SIGKILL
"""


def launcher_output(tmp_path, lock: str) -> str:
    script = tmp_path / "launcher.py"
    script.write_text(LAUNCHER)
    done = subprocess.run(
        [sys.executable, str(script), lock],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_a_worker_killed_by_sigkill_leaks_no_semaphore(tmp_path):
    assert "leaked semaphore" in launcher_output(tmp_path, "default"), "the fault, as it was"
    assert "leaked semaphore" not in launcher_output(tmp_path, "own")
