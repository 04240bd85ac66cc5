"""A study's trials by lineage (a first attempt with its retries and promoted continuations, which
share its number and its checkpoint folder), and the epochs each attempt trained again."""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from optuna.trial import FrozenTrial

from benchmarks.chaos.faults import Fault
from search import attrs
from search.study import promotion

# Faults that destroy a checkpoint or keep one from being written: retraining after them is the
# price of the fault, not a defect, and is only counted
CHECKPOINT_LOSS = ("truncate_checkpoint", "fill_disk")


class Retraining(NamedTuple):
    trial: int
    lineage: int
    how: str  # "retry" or "promotion"
    causes: tuple[str, ...]  # fault kinds that hit the lineage since the attempt before this one
    resumed_from: int  # the epoch restored from the checkpoint (0: none)
    retrained: int  # epochs it trained that an earlier attempt of its lineage had reported
    allowed: int | None  # what the checkpoint interval allows; None: any (a checkpoint was lost)

    @property
    def cause(self) -> str:
        return "+".join(self.causes) or (
            "no fault (promotion)" if self.how == "promotion" else "no fault"
        )

    @property
    def excessive(self) -> bool:
        return self.allowed is not None and self.retrained > self.allowed


def by_lineage(trials: list[FrozenTrial]) -> dict[int, list[FrozenTrial]]:
    """Each lineage's attempts, in the order they were created, but those that never ran (a
    continuation closed unpromoted, a follow-up queued twice): none trained, and none ended the
    lineage."""
    found: dict[int, list[FrozenTrial]] = defaultdict(list)
    for trial in sorted(trials, key=lambda trial: trial.number):
        if not promotion.never_ran(trial):
            found[attrs.first_attempt(trial)].append(trial)
    return dict(found)


def resumed_from(trial: FrozenTrial) -> int:
    value = trial.user_attrs.get(attrs.RESUMED_FROM_EPOCH, 0)
    return value if isinstance(value, int) else 0


def trained(trial: FrozenTrial) -> set[int]:
    """The epochs this attempt trained itself: what it reported beyond what it restored."""
    return {epoch for epoch in trial.intermediate_values if epoch > resumed_from(trial)}


def retraining(
    trials: list[FrozenTrial], faults: list[Fault], every_epochs: int
) -> list[Retraining]:
    """One record per attempt that continues another (a retry or a promotion) and ran."""
    records = []
    for lineage, attempts in by_lineage(trials).items():
        for index, attempt in enumerate(attempts[1:], start=1):
            if attempt.datetime_start is None:  # queued, never claimed
                continue
            earlier = {epoch for before in attempts[:index] for epoch in before.intermediate_values}
            previous = attempts[index - 1]
            causes = _causes(lineage, previous, attempt, faults)
            how = "promotion" if attrs.PROMOTION_OF in attempt.user_attrs else "retry"
            records.append(
                Retraining(
                    attempt.number,
                    lineage,
                    how,
                    causes,
                    resumed_from(attempt),
                    len(trained(attempt) & earlier),
                    _allowed(how, causes, every_epochs),
                )
            )
    return records


def _causes(
    lineage: int, previous: FrozenTrial, attempt: FrozenTrial, faults: list[Fault]
) -> tuple[str, ...]:
    since = previous.datetime_start.timestamp() if previous.datetime_start else 0.0
    until = attempt.datetime_start.timestamp() if attempt.datetime_start else float("inf")
    return tuple(
        sorted({f.kind for f in faults if lineage in f.lineages and since <= f.started <= until})
    )


def _allowed(how: str, causes: tuple[str, ...], every_epochs: int) -> int | None:
    if any(cause in CHECKPOINT_LOSS for cause in causes):
        return None
    # A pause writes its checkpoint at the rung, so an untroubled promotion retrains nothing; an
    # attempt cut short loses at most the epochs since its last checkpoint.
    return 0 if how == "promotion" and not causes else every_epochs
