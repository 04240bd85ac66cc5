"""What must hold of a study however it was treated, checked once it is over: each check a
PASS or a FAIL with the detail a person needs to find the defect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from benchmarks.chaos.faults import FILLER, Fault
from benchmarks.chaos.lineages import by_lineage, retraining
from benchmarks.chaos.scene import Settings
from benchmarks.chaos.search_run import ROOT
from search import attrs
from search.results.report_data import get_summary_info
from search.run import trial_files
from search.study import promotion
from search.study.epochs_budget import epochs_trained
from search.study.recorded import budget, created_with
from trainer.files import CHECKPOINT_NAME, WEIGHTS_NAME


class Check(NamedTuple):
    name: str
    ok: bool
    detail: str


@dataclass
class Evidence:
    """What the checks read besides the study: how the chaos run treated it."""

    settings: Settings
    storage_url: str
    checkpoints: Path
    faults: list[Fault]  # those that struck while this study ran
    early_exits: list[str]  # runs that ended before the study was done, unexplained by a fault
    log_errors: dict[str, int]  # the last line of each traceback in the runs' log, counted
    finished: bool  # the study was done within the cap
    why_unfinished: str = ""


def check_study(study: optuna.Study, evidence: Evidence) -> list[Check]:
    trials = study.get_trials(deepcopy=False)
    return [
        Check(
            "finished on its own",
            evidence.finished,
            "done within the cap" if evidence.finished else evidence.why_unfinished,
        ),
        _runs_end_when_done(evidence),
        _no_crash(evidence),
        _budget_met(study, trials, evidence.settings),
        _lineages_counted_once(study, trials, evidence.settings),
        _nothing_left(trials),
        _curves_whole(trials),
        _retraining_bounded(trials, evidence),
        _disk(study, trials, evidence),
        _commands_agree(study, trials, evidence),
        _fails_explained(trials),
        _no_result_lost(trials),
        _no_lineage_lost(study, trials),
        _never_replayed(trials),
    ]


def _runs_end_when_done(evidence: Evidence) -> Check:
    return Check(
        "a run ends only once its study is done (or every worker of it was killed or stopped)",
        not evidence.early_exits,
        "; ".join(evidence.early_exits) or "every run ended with its study done",
    )


DIVERGED = "NonFiniteLoss"  # a trial whose loss became NaN fails for good, as it should
# A retry closed unrun because the study's epoch budget was spent (search.run.worker): the study is
# done, nothing may train, so the lineage ends there whatever its retries
BUDGET_SPENT = "the epoch budget was met before this retry ran"

# What `hpsearch run` says once any worker process exited non-zero: after a SIGKILL of ours, that is
# the expected end; a worker that died of an error of its own leaves a traceback of its own.
LAUNCHER_SUMMARY = "RuntimeError: worker process(es) "


def _no_crash(evidence: Evidence) -> Check:
    crashes = {
        line: count
        for line, count in evidence.log_errors.items()
        if not line.startswith(LAUNCHER_SUMMARY)
    }
    return Check(
        "no process died of an error (a traceback in the runs' log)",
        not crashes,
        "; ".join(f"{count}x {line}" for line, count in crashes.items()) or "none",
    )


def _budget_met(study: optuna.Study, trials: list[FrozenTrial], settings: Settings) -> Check:
    spent, wanted = attrs.budget_spent(trials), budget(study, settings.trials)
    epochs, epochs_budget = epochs_trained(trials), settings.study_epochs_budget
    return Check(
        "budget met (trials, or epochs: whichever comes first)",
        spent >= wanted or epochs >= epochs_budget,
        f"trials {spent}/{wanted}, epochs trained {epochs}/{epochs_budget}",
    )


def _lineages_counted_once(
    study: optuna.Study, trials: list[FrozenTrial], settings: Settings
) -> Check:
    lineages = by_lineage(trials)
    firsts = {number for number, attempts in lineages.items() if not attrs.is_retry(attempts[0])}
    problems = [f"lineage {n} has no first attempt" for n in lineages if n not in firsts]
    for number, attempts in lineages.items():
        complete = [t.number for t in attempts if t.state == TrialState.COMPLETE]
        if len(complete) > 1:
            problems.append(f"lineage {number} completed {len(complete)} times: trials {complete}")
        # A queued attempt, or a continuation closed without running, suggested no parameters;
        # a first attempt killed while it drew them has only some, and its retry draws the rest
        # (nothing trained with them yet): what counts is a drawn value that changed
        changed = [
            t.number
            for t in attempts
            if any(t.params.get(name, value) != value for name, value in attempts[0].params.items())
            and t.params  # an attempt stopped before it suggested them has none
            and not (t.state == TrialState.WAITING or promotion.never_ran(t))
        ]
        if changed:
            problems.append(f"lineage {number}: trials {changed} changed its parameters")
    spent = attrs.budget_spent(trials)
    if spent != len(firsts):
        problems.append(f"budget_spent {spent} but {len(firsts)} first attempts")
    most = budget(study, settings.trials) + settings.workers * settings.trials_per_worker - 1
    if len(firsts) > most:
        problems.append(f"{len(firsts)} first attempts, more than budget + slots - 1 = {most}")
    return Check(
        "no first attempt counted twice",
        not problems,
        "; ".join(problems) or f"{len(firsts)} lineages, {len(trials)} trials, each counted once",
    )


def _nothing_left(trials: list[FrozenTrial]) -> Check:
    left = [f"{t.number} {t.state.name}" for t in trials if not t.state.is_finished()]
    return Check("nothing RUNNING or WAITING", not left, ", ".join(left) or "none")


def _curves_whole(trials: list[FrozenTrial]) -> Check:
    broken = []
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    for trial in complete:
        epochs = attrs.trial_config(trial).get("epochs")
        whole = list(range(1, epochs + 1)) if isinstance(epochs, int) else None
        reported = sorted(trial.intermediate_values)
        history = trial.user_attrs.get(attrs.HISTORY)
        recorded = [entry.get("epoch") for entry in history] if isinstance(history, list) else None
        if reported != whole or recorded != whole:
            broken.append(f"trial {trial.number}: reported {reported}, history {recorded}")
    return Check(
        "every COMPLETE trial's curve whole (epochs 1..N, no gap, no duplicate)",
        not broken,
        "; ".join(broken) or f"{len(complete)} complete trials whole",
    )


def _retraining_bounded(trials: list[FrozenTrial], evidence: Evidence) -> Check:
    records = retraining(trials, evidence.faults, evidence.settings.every_epochs)
    excessive = [
        f"trial {r.trial} (lineage {r.lineage}, {r.how} after {r.cause}) retrained {r.retrained} "
        f"epoch(s), resumed from {r.resumed_from}, allowed {r.allowed}"
        for r in records
        if r.excessive
    ]
    total = sum(r.retrained for r in records)
    return Check(
        "no epoch retrained beyond what the checkpoint interval allows",
        not excessive,
        "; ".join(excessive)
        or f"{total} epoch(s) retrained over {len(records)} continued attempts, all within bounds",
    )


def _disk(study: optuna.Study, trials: list[FrozenTrial], evidence: Evidence) -> Check:
    folder = trial_files.study_folder(evidence.checkpoints, study)
    expected = set()
    best = attrs.best_trial(trials)
    if best is not None:
        expected.add(trial_files.trial_folder(folder, attrs.first_attempt(best)) / WEIGHTS_NAME)
    for trial in trials:  # a paused trial that may still be promoted keeps its checkpoint
        if promotion.is_continuation_queued(trial):
            lineage = trial_files.trial_folder(folder, attrs.first_attempt(trial))
            expected.add(lineage / CHECKPOINT_NAME)
    found = {path for path in folder.rglob("*") if path.is_file()} if folder.exists() else set()
    set_aside = {path for path in found if f"{CHECKPOINT_NAME}.unreadable-" in path.name}
    extra = sorted(
        str(path.relative_to(evidence.checkpoints)) for path in found - expected - set_aside
    )
    missing = sorted(
        path for path in expected - found if not _weights_lost_to_full_disk(best, path, evidence)
    )
    if (evidence.checkpoints / FILLER).exists():
        extra.append(FILLER)
    problems = [f"left: {', '.join(extra)}"] if extra else []
    problems += (
        [f"missing: {', '.join(str(p.relative_to(evidence.checkpoints)) for p in missing)}"]
        if missing
        else []
    )
    notes = f"; set aside for a look (by design): {len(set_aside)}" if set_aside else ""
    return Check(
        "only the best trial's weights and promotable paused checkpoints left on disk",
        not problems,
        ("; ".join(problems) or f"{len(found - set_aside)} file(s), as expected") + notes,
    )


def _weights_lost_to_full_disk(best: FrozenTrial | None, path: Path, evidence: Evidence) -> bool:
    """The best trial's weights could not be written while a fill_disk fault held the disk."""
    if best is None or path.name != WEIGHTS_NAME or best.datetime_start is None:
        return False
    start = best.datetime_start.timestamp()
    end = best.datetime_complete.timestamp() if best.datetime_complete else float("inf")
    return any(
        f.kind == "fill_disk" and f.started <= end and f.ended >= start for f in evidence.faults
    )


def _commands_agree(study: optuna.Study, trials: list[FrozenTrial], evidence: Evidence) -> Check:
    best = attrs.best_trial(trials)
    said: dict[str, int | str | None] = {"attrs": best.number if best else None}
    status = _cli(
        "status", "--storage", evidence.storage_url, "--study", study.study_name, "--json"
    )
    said["status"] = (
        json.loads(status.stdout)[0]["best_trial"]
        if status.returncode == 0
        else f"exit {status.returncode}: {_last_line(status.stderr)}"
    )
    summary = get_summary_info(study)
    said["report"] = summary.best.number if summary.best else None
    exported = _cli(
        "export", "--storage", evidence.storage_url, "--study", study.study_name,
        "--checkpoint-dir", str(evidence.checkpoints),
    )  # fmt: skip
    if exported.returncode == 0:
        said["export"] = json.loads(exported.stdout)["provenance"]["trial"]
    else:
        said["export"] = (
            None if best is None else f"exit {exported.returncode}: {_last_line(exported.stderr)}"
        )
    return Check(
        "status, report and export agree on the best trial",
        len({repr(value) for value in said.values()}) == 1,
        ", ".join(f"{key} {value}" for key, value in said.items()),
    )


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "search", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _fails_explained(trials: list[FrozenTrial]) -> Check:
    failed = [t for t in trials if t.state == TrialState.FAIL]
    silent = [t.number for t in failed if not attrs.fail_reason(t)]
    reasons = Counter(_reason_kind(attrs.fail_reason(t) or "") for t in failed)
    return Check(
        "every FAIL has a reason",
        not silent,
        (f"no reason: trials {silent}; " if silent else "")
        + f"{len(failed)} FAIL: "
        + (", ".join(f"{count} {kind}" for kind, count in reasons.most_common()) or "none"),
    )


def _no_result_lost(trials: list[FrozenTrial]) -> Check:
    """A trial that reported its last epoch has its result: it must be COMPLETE, whatever became
    of its weights or checkpoint."""
    lost = []
    for trial in trials:
        epochs = attrs.trial_config(trial).get("epochs")
        if trial.state == TrialState.FAIL and epochs in trial.intermediate_values:
            lost.append(f"trial {trial.number} ({attrs.fail_reason(trial)})")
    return Check(
        "no result thrown away (a trial that reported its last epoch is COMPLETE)",
        not lost,
        "; ".join(lost) or "none",
    )


def _no_lineage_lost(study: optuna.Study, trials: list[FrozenTrial]) -> Check:
    """Every fault injected passes: a lineage may end FAIL for good only once it has used its
    retries on faults (or on a loss that is no number, or with the study's epoch budget spent),
    never on its first brush with a fault."""
    retries = created_with(study).heartbeat.max_retries
    lost = []
    for lineage, attempts in by_lineage(trials).items():
        last = attempts[-1]
        reason = attrs.fail_reason(last) or ""
        # Faults, which max_retries bounds; a lineage older than their count counted attempts
        used = last.user_attrs.get(attrs.FAULTS, last.user_attrs.get(attrs.ATTEMPT, 0))
        expected = DIVERGED in reason or BUDGET_SPENT in reason
        if last.state == TrialState.FAIL and used < retries and not expected:
            lost.append(f"lineage {lineage} (trial {last.number}, attempt {used}: {reason})")
    return Check(
        "no lineage lost to a passing fault (FAIL for good only once out of retries)",
        not lost,
        "; ".join(lost) or "none",
    )


def _reason_kind(reason: str) -> str:
    """A reason without its numbers and names, to count alike reasons together."""
    words = reason.split(":")[0] if ":" in reason[:60] else reason[:60]
    return "".join(ch for ch in words if not ch.isdigit()).strip()


def _never_replayed(trials: list[FrozenTrial]) -> Check:
    firsts = [t for t in trials if not attrs.is_retry(t)]
    seen: dict[str, list[int]] = {}
    for trial in firsts:
        seen.setdefault(json.dumps(trial.params, sort_keys=True), []).append(trial.number)
    replayed = [numbers for numbers in seen.values() if len(numbers) > 1]
    return Check(
        "no two first attempts share parameters (the sampler never replays)",
        not replayed,
        "; ".join(f"trials {numbers} identical" for numbers in replayed)
        or f"{len(firsts)} first attempts, all distinct",
    )
