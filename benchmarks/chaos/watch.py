"""What the database shows while faults strike, read with plain SQL on Optuna's tables: when each
epoch report first appeared (to time the resumption after a fault) and which trials run where
(to know what a fault hits). The reads never go through hpsearch, whose retries would hide an
outage; a read the database cannot answer is skipped."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import psycopg

from search import attrs

EPOCHS = """
SELECT s.study_name, t.number, v.step
FROM trial_intermediate_values v
JOIN trials t ON t.trial_id = v.trial_id
JOIN studies s ON s.study_id = t.study_id
"""
RUNNING = """
SELECT t.number, a.key, a.value_json
FROM trials t
JOIN studies s ON s.study_id = t.study_id
LEFT JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key IN (%s, %s)
WHERE s.study_name = %s AND t.state = 'RUNNING'
"""


class RunningTrial(NamedTuple):
    number: int
    lineage: int  # its first attempt's number
    pid: int | None  # its worker process


class Watch:
    """Polls the epochs reported, every `every` seconds, in a thread of its own."""

    def __init__(self, connect: Callable[[], psycopg.Connection], every: float = 0.5):
        self.connect, self.every = connect, every
        self.first_seen: dict[tuple[str, int, int], float] = {}  # (study, trial, epoch): time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="chaos-watch")

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        connection = None
        while not self._stop.wait(self.every):
            try:
                if connection is None:
                    connection = self.connect()
                rows = connection.execute(EPOCHS).fetchall()
            except psycopg.Error:  # an outage, or the study's tables not there yet
                _closed(connection)
                connection = None
                continue
            now = time.time()
            for study, number, step in rows:
                self.first_seen.setdefault((study, number, step), now)
        _closed(connection)

    def running(self, study: str) -> list[RunningTrial]:
        """The study's RUNNING trials, with their lineage and worker pid; none if unreadable."""
        try:
            with self.connect() as connection:
                rows = connection.execute(RUNNING, (attrs.WORKER, attrs.RETRY_OF, study)).fetchall()
        except psycopg.Error:
            return []
        found: dict[int, dict[str, object]] = {}
        for number, key, value in rows:
            found.setdefault(number, {})
            if key is not None:
                found[number][key] = json.loads(value)
        return [_running(number, values) for number, values in sorted(found.items())]


def _running(number: int, values: dict[str, object]) -> RunningTrial:
    worker = values.get(attrs.WORKER)
    pid = worker.get("pid") if isinstance(worker, dict) else None
    lineage = values.get(attrs.RETRY_OF, number)
    return RunningTrial(
        number,
        lineage if isinstance(lineage, int) else number,
        pid if isinstance(pid, int) else None,
    )


def _closed(connection: psycopg.Connection | None) -> None:
    if connection is not None:
        with contextlib.suppress(psycopg.Error):
            connection.close()
