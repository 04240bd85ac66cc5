"""A live progress line for a study, read from the storage so it covers every worker."""

from __future__ import annotations

import threading

import optuna
from tqdm.auto import tqdm

from search import attrs
from search.study.promotion import pause_counts

POLL_SECONDS = 2.0


class StudyProgress:
    """`with StudyProgress(study, budget):` shows
    finished, pruned, failed and best while it runs."""

    def __init__(self, study: optuna.Study, budget: int, *, enabled: bool = True):
        self.study = study
        self.budget = budget
        self.bar = tqdm(
            total=budget,
            desc=study.study_name,
            unit="trial",
            disable=not enabled,
            dynamic_ncols=True,
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
        self.bar.close()

    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.refresh()

    def refresh(self) -> None:
        if self.bar.disable:
            return
        try:
            trials = self.study.get_trials(deepcopy=False)
        # A database hiccup must not kill the progress line; the next poll retries.
        except Exception:  # noqa: BLE001
            return
        counts = pause_counts(trials)  # asha's paused trials apart from the pruned ones
        best = attrs.best_trial(trials)
        self.bar.n = min(attrs.budget_spent(trials), self.budget)
        self.bar.set_postfix_str(
            f"pruned {counts['pruned']}, "
            + (f"paused {counts['paused']}, " if counts["paused"] + counts["promoted"] else "")
            + f"failed {counts['fail']}, running {counts['running']}"
            + (f", best {best.value:.2%}" if best else "")
        )
