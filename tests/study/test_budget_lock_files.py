"""The SQLite budget lock's file is removed by the holder that lets go, so that the temporary
folder does not gather one per database and study ever run; processes that lock it at once, some
of them waiting on a file just removed, still hold it one at a time."""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path

from search.study.budget_lock import BudgetLock

PROCESSES = 4
ROUNDS = 40


def test_the_lock_leaves_no_file_behind(tmp_path, monkeypatch):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # where tempfile puts everything
    for study in ("a", "b"):
        lock = BudgetLock(f"sqlite:///{tmp_path / 'budget.db'}", study)
        with lock.held():
            assert len(list(temporary.iterdir())) == 1  # held: there, for others to lock
    assert not list(temporary.iterdir())


def _count_under_lock(url: str, counter: str, ready, start) -> None:
    lock, path = BudgetLock(url, "s"), Path(counter)
    ready.release()
    start.wait()
    for _ in range(ROUNDS):
        with lock.held():
            seen = int(path.read_text())
            time.sleep(0.001)  # another holder at the same time would write over this count
            path.write_text(str(seen + 1))


def test_processes_hold_the_lock_one_at_a_time_while_its_file_comes_and_goes(tmp_path):
    counter = tmp_path / "counter"
    counter.write_text("0")
    url = f"sqlite:///{tmp_path / 'budget.db'}"
    context = multiprocessing.get_context("spawn")
    ready, start = context.Semaphore(0), context.Event()
    workers = [
        context.Process(target=_count_under_lock, args=(url, str(counter), ready, start))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            assert ready.acquire(timeout=60)
        start.set()
        for worker in workers:
            worker.join(60)
    finally:
        for worker in workers:
            worker.kill()
            worker.join()
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    assert int(counter.read_text()) == PROCESSES * ROUNDS
