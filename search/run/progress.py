"""A live progress line for a study, read from the storage so it covers every worker.

Two lines: the bar of trials (finished, pruned, paused, stopped, failed, running, best), and
under it the epoch each running trial is in, since a trial takes minutes on a CPU and a bar that
moves per trial shows nothing else moving meanwhile. Both come from one read of the study's
trials per refresh, which the bar made anyway: a running trial's reported epochs and its config
(its planned epochs) are part of every read of the trial.
"""

from __future__ import annotations

import threading
from typing import IO

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from search import attrs
from search.study.promotion import shown_counts

POLL_SECONDS = 2.0


class StudyProgress:
    """`with StudyProgress(study, budget):` shows
    finished, pruned, failed and best while it runs, and the running trials' epochs."""

    def __init__(
        self,
        study: optuna.Study,
        budget: int,
        *,
        enabled: bool = True,
        file: IO[str] | None = None,  # standard error by default
    ):
        self.study = study
        self.budget = budget
        # A resumed study's earlier trials are counted from the start (`initial`), so the rate
        # and the time left count only the trials this run finished, not those before it
        finished_before = min(attrs.budget_spent(self._trials() or []), budget) if enabled else 0
        self.bar = tqdm(
            total=budget,
            initial=finished_before,
            desc=study.study_name,
            unit="trial",
            disable=not enabled,
            dynamic_ncols=True,
            file=file,
        )
        self.running = tqdm(
            total=0,
            bar_format="{desc}",
            disable=not enabled,
            leave=False,
            dynamic_ncols=True,  # cut at the terminal's width: a wrapped line breaks the redraw
            file=file,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="study-progress")

    def __enter__(self) -> StudyProgress:
        if not self.bar.disable:
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.refresh()
        self.running.close()
        self.bar.close()

    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.refresh()

    def _trials(self) -> list[FrozenTrial] | None:
        try:
            return self.study.get_trials(deepcopy=False)
        # A database hiccup must not kill the progress line; the next poll retries.
        except Exception:  # noqa: BLE001
            return None

    def refresh(self) -> None:
        if self.bar.disable:
            return
        trials = self._trials()
        if trials is None:
            return
        self.bar.n = max(min(attrs.budget_spent(trials), self.budget), self.bar.initial)
        self.bar.set_postfix_str(counts_text(trials))
        self.running.set_description_str(running_text(trials))


def counts_text(trials: list[FrozenTrial]) -> str:
    """`pruned 2, paused 1, stopped 1, failed 0, running 2, best 41.20%`: paused and stopped only
    where the study has any."""
    counts = shown_counts(trials)  # asha's paused trials apart from the pruned ones
    best = attrs.best_trial(trials)
    return (
        f"pruned {counts['pruned']}, "
        + (f"paused {counts['paused']}, " if counts["paused"] + counts["promoted"] else "")
        + (f"stopped {counts['stopped']}, " if counts["stopped"] else "")
        + f"failed {counts['fail']}, running {counts['running']}"
        + (f", best {best.value:.2%}" if best else "")
    )


def running_text(trials: list[FrozenTrial]) -> str:
    """`running: trials 3, 4 in epoch 2/6, trial 7 in epoch 1/6`, or nothing while none runs.
    Trials at one epoch are named together: a worker's slots train in step, and the line is cut
    at the terminal's width."""
    at: dict[str, list[int]] = {}
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            at.setdefault(_where(trial), []).append(trial.number)
    return (
        "running: " + ", ".join(f"{_trials_text(numbers)} {where}" for where, numbers in at.items())
        if at
        else ""
    )


def _where(trial: FrozenTrial) -> str:
    config = trial.user_attrs.get(attrs.CONFIG)
    epochs = config.get("epochs") if isinstance(config, dict) else None
    if not isinstance(epochs, int):  # claimed, its settings not drawn yet
        return "starting"
    # A retry or a promotion reports its restored epochs first: it continues from there
    return f"in epoch {min(attrs.epochs_done(trial) + 1, epochs)}/{epochs}"


def _trials_text(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"trial {numbers[0]}"
    return "trials " + ", ".join(map(str, numbers))
