"""The figures of a chaos run: faults by kind, epochs retrained per fault, seconds from each fault
to resumed training, and what the runs' logs say went wrong."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

from optuna.trial import FrozenTrial

from benchmarks.chaos.faults import Fault
from benchmarks.chaos.lineages import Retraining, by_lineage, resumed_from, trained
from search import attrs


def trial_rows(trials: list[FrozenTrial], origin: float) -> list[dict]:
    """Each trial in a line of the JSON: what a person needs to follow a lineage through faults."""
    keys = (
        attrs.RETRY_OF, attrs.RETRIED_FROM, attrs.PROMOTION_OF, attrs.PAUSED_AT,
        attrs.PROMOTION_CLOSED, attrs.DUPLICATE_OF, attrs.RESUMED_FROM_EPOCH, attrs.FAIL_REASON,
        attrs.RETRY_REASON,
    )  # fmt: skip
    return [
        {
            "number": trial.number,
            "state": trial.state.name,
            "epochs": sorted(trial.intermediate_values),
            "value": trial.value,
            # seconds since the chaos run began, as the faults' times are
            "started": _since(trial.datetime_start, origin),
            "ended": _since(trial.datetime_complete, origin),
            **{key: trial.user_attrs[key] for key in keys if key in trial.user_attrs},
        }
        for trial in trials
    ]


def _since(moment: datetime | None, origin: float) -> float | None:
    return None if moment is None else round(moment.timestamp() - origin, 1)


def struck(faults: list[Fault]) -> list[Fault]:
    """The faults that did something (a worker fault with no worker to hit did not)."""
    return [fault for fault in faults if "nothing done" not in fault.detail]


def faults_by_kind(faults: list[Fault]) -> dict[str, int]:
    return dict(sorted(Counter(fault.kind for fault in struck(faults)).items()))


def retrained_by_cause(records: list[Retraining]) -> dict[str, dict[str, int]]:
    """Per cause: the attempts it cut short and the epochs they trained again."""
    found: dict[str, dict[str, int]] = defaultdict(lambda: {"attempts": 0, "epochs_retrained": 0})
    for record in records:
        found[record.cause]["attempts"] += 1
        found[record.cause]["epochs_retrained"] += record.retrained
    return dict(sorted(found.items()))


def epochs_counted(trials: dict[str, list[FrozenTrial]]) -> dict[str, int]:
    """Epochs trained over every attempt of every study, against the distinct epochs of each
    lineage: the difference is what was trained again."""
    trained_total = sum(len(trained(trial)) for found in trials.values() for trial in found)
    distinct = sum(
        len({epoch for trial in attempts for epoch in trial.intermediate_values})
        for found in trials.values()
        for attempts in by_lineage(found).values()
    )
    return {"trained": trained_total, "distinct": distinct, "retrained": trained_total - distinct}


def trained_reports(
    first_seen: dict[tuple[str, int, int], float], trials: dict[str, list[FrozenTrial]]
) -> list[tuple[float, str, int]]:
    """(time first seen, study, lineage) of every report of an epoch trained, not restored."""
    attempts = {(study, t.number): t for study, found in trials.items() for t in found}
    reports = []
    for (study, number, epoch), seen in first_seen.items():
        trial = attempts.get((study, number))
        if trial is not None and epoch > resumed_from(trial):
            reports.append((seen, study, trial.user_attrs.get("retry_of", trial.number)))
    return sorted(reports)


def resume_seconds(fault: Fault, reports: list[tuple[float, str, int]]) -> dict[str, float | None]:
    """From the fault striking to the next epoch trained after it was over: by any trial, and by
    a lineage it hit (None when none trained again: it had finished, or was closed)."""
    after = [(seen, study, lineage) for seen, study, lineage in reports if seen > fault.ended]
    any_epoch = next((seen for seen, study, _ in after if study == fault.study), None)
    hit = next(
        (
            seen
            for seen, study, lineage in after
            if study == fault.study and lineage in fault.lineages
        ),
        None,
    )
    return {
        "to_any_epoch": None if any_epoch is None else round(any_epoch - fault.started, 1),
        "to_hit_lineage_epoch": None if hit is None else round(hit - fault.started, 1),
    }


def resume_by_kind(timed: list[tuple[Fault, dict[str, float | None]]]) -> dict[str, dict]:
    """Per kind: median and worst seconds to the next epoch of any trial, and of a lineage hit."""
    grouped: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for fault, seconds in timed:
        for key, value in seconds.items():
            if value is not None:
                grouped[fault.kind][key].append(value)
    return {
        kind: {
            key: {
                "median": round(statistics.median(values), 1),
                "max": max(values),
                "n": len(values),
            }
            for key, values in found.items()
        }
        for kind, found in sorted(grouped.items())
    }


CHAINED = ("The above exception was the direct cause", "During handling of the above exception")


def log_errors(log: Path) -> dict[str, int]:
    """The exception that ended each traceback in a run's log (the last of a chain), counted:
    each a crash to look into."""
    if not log.exists():
        return {}
    found: Counter[str] = Counter()
    chain: list[str] = []
    in_traceback = continuing = False
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("Traceback (most recent call last)"):
            if not continuing and chain:
                found[chain[-1]] += 1
                chain.clear()
            in_traceback, continuing = True, False
        elif line.startswith(CHAINED):
            continuing = True  # the exception just read caused the next: the last one counts
        elif in_traceback and line.strip() and not line.startswith((" ", "\t")):
            chain.append(re.sub(r"\d+", "N", line.strip())[:200])
            in_traceback = False
    if chain:
        found[chain[-1]] += 1
    return dict(found.most_common())
