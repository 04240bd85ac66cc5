"""The chaos loop: run studies one after another while faults strike, start a run again whenever it
ends before its study is done, then check every study and gather the figures."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import optuna
from optuna.trial import TrialState

from benchmarks.chaos import figures
from benchmarks.chaos.faults import KINDS, Fault, Injector
from benchmarks.chaos.invariants import Check, Evidence, check_study
from benchmarks.chaos.lineages import retraining
from benchmarks.chaos.proxy import Proxy, running_proxy
from benchmarks.chaos.scene import (
    Settings,
    TmpfsUnavailable,
    study_name,
    tmpfs,
    write_study_file,
)
from benchmarks.chaos.search_run import SearchRun
from benchmarks.chaos.watch import Watch
from search import attrs
from search.study.epochs_budget import epochs_trained
from search.study.recorded import budget
from tests.helpers.images import make_image_folder
from tests.helpers.private_postgres import PrivateCluster, private_cluster

POLL_SECONDS = 0.5
FRUITLESS_STARTS = 3  # runs in a row that end with no new epoch: the study is stuck


class Standing(NamedTuple):
    done: bool
    epochs: int
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class Round:
    """One study, from its first run to done (or the cap)."""

    number: int
    run: SearchRun
    finished: bool = False
    why_unfinished: str = ""
    early_exits: list[str] = field(default_factory=list)
    epochs: int = -1  # epochs trained when its last run ended
    fruitless: int = 0  # runs in a row that ended with no epoch trained

    @property
    def study(self) -> str:
        return study_name(self.number)


@dataclass
class Chaos:
    settings: Settings
    cluster: PrivateCluster
    workdir: Path
    images: Path
    checkpoints: Path
    disk: bool  # the checkpoint folder is our tmpfs: fill_disk may strike
    say: Callable[[str], None] = print
    proxy: Proxy | None = None  # the workers' way to the database, when not direct
    faults: list[Fault] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.settings.seed)
        self.origin = time.time()
        self.inject_until = self.origin + 60 * self.settings.minutes
        self.cap = self.inject_until + 60 * self.settings.cap_minutes
        self.storage = optuna.storages.RDBStorage(
            self.cluster.url, engine_kwargs={"pool_pre_ping": True}
        )
        kinds = self.settings.faults or KINDS
        if not self.disk:
            kinds = tuple(kind for kind in kinds if kind != "fill_disk")
        if self.proxy is None:
            kinds = tuple(kind for kind in kinds if kind != "restart_proxy")
        self.kinds = kinds
        # The workers' storage; the harness's own reads (watch, standing, invariants) go to the
        # database directly, so that what they see is the database's, not the proxy's cache
        self.run_storage = self.proxy.url if self.proxy is not None else self.cluster.url

    def run(self) -> dict:
        with Watch(lambda: self.cluster.connect(autocommit=True, connect_timeout=2)) as watch:
            injector = Injector(
                self.rng, self.cluster, self.checkpoints, watch,
                self.settings.grace_seconds, self.kinds, self.disk, self.proxy,
            )  # fmt: skip
            while not self.rounds or self._may_start_another():
                self.rounds.append(self._round(len(self.rounds) + 1, injector))
                if time.time() > self.cap:
                    break
            time.sleep(2 * POLL_SECONDS)  # the watch sees the last reports
        return self._report(watch)

    def _may_start_another(self) -> bool:
        rounds_left = self.settings.rounds is None or len(self.rounds) < self.settings.rounds
        return rounds_left and self._injecting()

    def _injecting(self) -> bool:
        faults_left = (
            self.settings.max_faults is None
            or len(figures.struck(self.faults)) < self.settings.max_faults
        )
        return faults_left and time.time() < self.inject_until

    def _round(self, number: int, injector: Injector) -> Round:
        run = SearchRun(
            write_study_file(self.workdir, self.settings, self.images, number),
            self.run_storage, self.settings.workers, self.checkpoints,
            self.workdir / "cache", self.workdir / f"{study_name(number)}.log",
            self.settings.trials_per_worker,
        )  # fmt: skip
        current = Round(number, run)
        self._say(f"study {current.study}: started, log in {run.log}")
        run.start()
        next_fault = time.time() + self.rng.uniform(*self.settings.gap_seconds)
        while True:
            if self._injecting() and time.time() >= next_fault:
                next_fault = self._strike(injector, run, current.study) or time.time() + 1
            code = run.poll()
            if code is not None and self._after_exit(current, code):
                return current
            if code is None and time.time() > self.cap:
                run.kill()
                current.why_unfinished = (
                    f"still running at the cap: {self._standing(current.study)}"
                )
                return current
            time.sleep(POLL_SECONDS)

    def _after_exit(self, current: Round, code: int) -> bool:
        """After a run ended: True when the round is over (its study done, or given up); else the
        run is started again, as a user would."""
        standing = self._standing(current.study)
        self._say(f"study {current.study}: run exited {code}; {standing}")
        if standing.done:
            current.finished = True
            return True
        self._note_early_exit(current, code, standing)
        current.fruitless = current.fruitless + 1 if standing.epochs == current.epochs else 0
        current.epochs = standing.epochs
        if time.time() > self.cap or current.fruitless >= FRUITLESS_STARTS:
            why = "past the cap" if time.time() > self.cap else "runs in a row trained nothing"
            current.why_unfinished = f"not done ({standing}): {why}"
            return True
        current.run.start()
        return False

    def _strike(self, injector: Injector, run: SearchRun, study: str) -> float | None:
        """Inject one fault of a kind that can strike now; the time of the next, or None to try
        again in a moment."""
        kinds = injector.applicable(run, study)
        if self.settings.in_order:  # the next of the plan, once it can strike
            planned = self.kinds[len(figures.struck(self.faults)) % len(self.kinds)]
            kinds = [planned] if planned in kinds else []
        if not kinds:
            return None
        fault = injector.inject(self.rng.choice(kinds), run, study)
        self.faults.append(fault)
        hit = f" (trials {fault.trials})" if fault.trials else ""
        self._say(f"{fault.kind}: {fault.detail}{hit}", at=fault.started)
        return time.time() + self.rng.uniform(*self.settings.gap_seconds)

    def _note_early_exit(self, current: Round, code: int, standing: Standing) -> None:
        """A run that ended before its study was done: explained when faults killed or stopped
        every worker of it, or filled the disk (a designed stop); else a defect to report."""
        exit_ = current.run.exits[-1]
        taken = {
            fault.pid
            for fault in self.faults
            if fault.kind in ("kill_worker", "term_worker")
            and exit_.started <= fault.started <= exit_.ended
        }
        # A full checkpoint disk stops every worker on purpose, exit 2 with one line (free the
        # space, run again): the run that ends so after a fill of ours is explained too
        filled = any(
            fault.kind == "fill_disk" and exit_.started <= fault.started <= exit_.ended
            for fault in self.faults
        )
        if len(taken) < self.settings.workers and not (filled and code == 2):
            current.early_exits.append(
                f"run started at {exit_.started - self.origin:.0f} s exited {code} at "
                f"{exit_.ended - self.origin:.0f} s with {standing} ({len(taken)} of its "
                f"{self.settings.workers} workers killed or stopped)"
            )

    def _standing(self, study: str) -> Standing:
        """Where the study stands: done once its budget is met and nothing runs or waits."""
        try:
            loaded = optuna.load_study(study_name=study, storage=self.storage)
        except KeyError:
            return Standing(False, 0, "the study does not exist yet")
        trials = loaded.get_trials(deepcopy=False)
        spent, wanted = attrs.budget_spent(trials), budget(loaded, self.settings.trials)
        epochs = epochs_trained(trials)
        met = spent >= wanted or epochs >= self.settings.study_epochs_budget
        open_ = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        counts = ", ".join(f"{n} {s}" for s, n in attrs.state_counts(trials).items() if n)
        epochs_budget = self.settings.study_epochs_budget
        text = f"trials {spent}/{wanted}, epochs {epochs}/{epochs_budget}, {counts}"
        return Standing(met and not open_, epochs, text)

    def _say(self, line: str, at: float | None = None) -> None:
        self.say(f"[{(at or time.time()) - self.origin:7.1f} s] {line}")

    def _report(self, watch: Watch) -> dict:
        studies = {
            r.study: optuna.load_study(study_name=r.study, storage=self.storage)
            for r in self.rounds
            if self._exists(r.study)
        }
        trials = {name: study.get_trials(deepcopy=False) for name, study in studies.items()}
        checks: dict[str, list[Check]] = {}
        records = []
        for current in self.rounds:
            if current.study not in studies:
                checks[current.study] = [Check("study created", False, current.why_unfinished)]
                continue
            faults = [f for f in self.faults if f.study == current.study]
            evidence = Evidence(
                self.settings, self.cluster.url, self.checkpoints, faults,
                current.early_exits, figures.log_errors(current.run.log),
                current.finished, current.why_unfinished,
            )  # fmt: skip
            checks[current.study] = check_study(studies[current.study], evidence)
            records += retraining(trials[current.study], faults, self.settings.every_epochs)
        reports = figures.trained_reports(watch.first_seen, trials)
        timed = [
            (fault, figures.resume_seconds(fault, reports)) for fault in figures.struck(self.faults)
        ]
        held = [check for found in checks.values() for check in found]
        return {
            "settings": vars(self.settings),
            "machine": {"cpus": os.cpu_count(), "load_at_end": os.getloadavg()},
            "seconds": round(time.time() - self.origin, 1),
            "studies": [r.study for r in self.rounds],
            "run_starts": sum(len(r.run.exits) for r in self.rounds),
            "faults_by_kind": figures.faults_by_kind(self.faults),
            "invariants_held": f"{sum(c.ok for c in held)}/{len(held)}",
            "invariants": {
                name: [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in found]
                for name, found in checks.items()
            },
            "epochs": figures.epochs_counted(trials),
            "retrained_by_fault": figures.retrained_by_cause(records),
            "resume_seconds_by_kind": figures.resume_by_kind(timed),
            "faults": [{**fault.as_dict(self.origin), **seconds} for fault, seconds in timed],
            "log_errors": {r.study: figures.log_errors(r.run.log) for r in self.rounds}
            | self._proxy_log_errors(),
            "logs": [str(r.run.log) for r in self.rounds]
            + ([str(self.proxy.log)] if self.proxy is not None else []),
            "trials": {
                name: figures.trial_rows(found, self.origin) for name, found in trials.items()
            },
        }

    def _proxy_log_errors(self) -> dict[str, dict[str, int]]:
        """The tracebacks in the proxy's log, under its name (a SIGKILL leaves none)."""
        return {} if self.proxy is None else {"grpc-proxy": figures.log_errors(self.proxy.log)}

    def _exists(self, study: str) -> bool:
        return study in optuna.get_all_study_names(self.storage)


def run_chaos(
    settings: Settings,
    workdir: Path,
    say: Callable[[str], None] = print,
    cluster: PrivateCluster | None = None,
) -> dict:
    """Images, a private PostgreSQL cluster (unless given one), the checkpoint tmpfs and, with
    `through_proxy`, the workers' gRPC proxy; the chaos loop on them; all removed afterwards but
    the work folder (logs, study files)."""
    images = make_image_folder(workdir / "images", train_per_class=settings.images_per_class)
    with ExitStack() as stack:
        if cluster is None:
            cluster = stack.enter_context(private_cluster())
        checkpoints, disk = workdir / "checkpoints", settings.tmpfs_mb is not None
        if settings.tmpfs_mb is not None:
            try:
                stack.enter_context(tmpfs(checkpoints, settings.tmpfs_mb))
            except TmpfsUnavailable as error:
                say(f"chaos: no tmpfs for the checkpoints ({error}); the disk fault is left out")
                disk = False
        proxy = None
        if settings.through_proxy:
            proxy = stack.enter_context(running_proxy(cluster.url, workdir / "grpc-proxy.log"))
            say(f"chaos: the workers go through the gRPC proxy at {proxy.url}")
        chaos = Chaos(settings, cluster, workdir, images, checkpoints, disk, say=say, proxy=proxy)
        return {**chaos.run(), "tmpfs": disk, "workdir": str(workdir)}
