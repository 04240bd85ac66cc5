"""The trial budget holds when workers reach its last trial at the same moment: on each storage,
on its real server, six workers (threads, each with its own connections, as processes have)
released at once find one trial left, and exactly one of them starts it. A lock held too long
is done without: a worker is never stalled by it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from search.study import budget_lock
from search.study.budget_lock import BudgetLock, new_trial_within_budget
from search.study.storage import open_storage

BUDGET = 3
WORKERS = 6


@pytest.fixture
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'budget.db'}"
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mysql_url")


EACH_STORAGE = pytest.mark.parametrize(
    "url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
            pytest.param("mysql", marks=pytest.mark.mysql)],
    indirect=True,
)  # fmt: skip


@EACH_STORAGE
def test_workers_reaching_the_last_trial_at_once_start_it_once(url):
    study = optuna.create_study(study_name="s", storage=open_storage(url), direction="maximize")
    for value in range(BUDGET - 1):
        study.add_trial(create_trial(value=value, params={}, distributions={}))
    released = threading.Barrier(WORKERS)

    def worker() -> bool:
        own = optuna.load_study(study_name="s", storage=open_storage(url))
        lock = BudgetLock(url, "s")
        released.wait()
        trial = new_trial_within_budget(own, lock, BUDGET, points_only=False)
        return trial is not None

    with ThreadPoolExecutor(WORKERS) as pool:
        started = list(pool.map(lambda _: worker(), range(WORKERS)))
    assert started.count(True) == 1, started
    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    assert states == [TrialState.COMPLETE] * (BUDGET - 1) + [TrialState.RUNNING]


@EACH_STORAGE
def test_a_lock_held_past_the_wait_is_done_without(url, monkeypatch):
    monkeypatch.setattr(budget_lock, "LOCK_WAIT_SECONDS", 1)
    study = optuna.create_study(study_name="s", storage=open_storage(url), direction="maximize")
    stuck, released = threading.Event(), threading.Event()

    def stuck_holder() -> None:  # a worker whose storage stopped answering inside the lock
        with BudgetLock(url, "s").held():
            stuck.set()
            released.wait(30)

    holder = threading.Thread(target=stuck_holder)
    holder.start()
    try:
        stuck.wait(10)
        began = time.monotonic()
        trial = new_trial_within_budget(study, BudgetLock(url, "s"), BUDGET, points_only=False)
        waited = time.monotonic() - began
    finally:
        released.set()
        holder.join()
    assert trial is not None and 1 <= waited < 10


def test_a_follow_up_s_lock_is_waited_for_through_an_outage(private_postgres):
    """Done without while the server was down, two workers queued one trial's retry twice (the
    chaos run, 2026-12-07): both trained the lineage's one checkpoint at once, and one crashed."""
    lock = BudgetLock(private_postgres.url, "s")
    inside, released = threading.Event(), threading.Event()

    def queue_a_follow_up() -> None:
        with lock.held(through_outages=True):
            inside.set()
            released.wait(30)

    private_postgres.stop()
    holder = threading.Thread(target=queue_a_follow_up)
    holder.start()
    try:
        assert not inside.wait(2), "went on without the lock while its server was down"
        private_postgres.start()
        assert inside.wait(30), "never had the lock once its server was back"
        with private_postgres.connect() as connection:
            key = (budget_lock._key(lock.name),)
            free = connection.execute("SELECT pg_try_advisory_lock(%s)", key).fetchone()
    finally:
        released.set()
        holder.join()
    assert free == (False,), "the lock is held by the worker inside"
