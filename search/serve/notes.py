"""What report and export attach to a study for the dashboard to show: the study note's sections
(the best trial, the latest report, the exported parameters) and the report as an artifact."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import upload_artifact

from search import attrs
from search.serve.artifacts import (
    REPORT_MIMETYPE,
    REPORT_SUFFIX,
    ArtifactFolder,
    make_artifact_folder,
)
from search.study.optuna_compat import storage_of, study_id_of
from search.study.promotion import shown_counts

REPORT_HEADING = "Report"
BEST_PARAMS_HEADING = "Best parameters"
# The study note is shared by the sections below, each replaced whole on refresh; text a person
# writes above the first of them is kept.
NOTE_HEADINGS = (REPORT_HEADING, BEST_PARAMS_HEADING)


def artifact_store(artifact_dir: str | Path, suffix: str = "") -> ArtifactFolder:
    make_artifact_folder(Path(artifact_dir))
    return ArtifactFolder(Path(artifact_dir), suffix)


def attach_report(study: optuna.Study, html_path: str | Path, artifact_dir: str | Path) -> str:
    """Upload the report as an artifact of the study (replacing an earlier upload of the same file
    name) and summarise the best trial in the study note with a link to it;
    returns the artifact id."""
    html_path = Path(html_path)
    # The page is HTML whatever its name (`-o r2`): its copy is ID.html, served as HTML
    store = artifact_store(artifact_dir, REPORT_SUFFIX)
    artifact_id = _replace_artifact(study, html_path, store)
    link = f"[{html_path.name}](/artifacts/{study_id_of(study)}/{artifact_id})"
    body = (
        f"{best_trial_line(study)}\n\nPlots: {link} (also among the study's artifacts), "
        f"updated {_now()}."
    )
    _save_note_section(study, REPORT_HEADING, body)
    return artifact_id


def attach_best_params(study: optuna.Study, text: str, fmt: str) -> None:
    """Put the exported best parameters (`text` in `fmt`: json, toml, yaml) in the study note."""
    if not re.fullmatch(r"[A-Za-z0-9_+-]+", fmt):
        raise ValueError(
            f"fmt must be a format name such as 'json', 'toml' or 'yaml', but got {fmt!r}"
        )
    _save_note_section(study, BEST_PARAMS_HEADING, f"Exported {_now()}:\n\n{_fenced(text, fmt)}")


def _replace_artifact(study: optuna.Study, path: Path, store: ArtifactFolder) -> str:
    existing = _study_artifacts(study).get(path.name)
    if existing is None:
        return upload_artifact(
            artifact_store=store,
            file_path=str(path),
            study_or_trial=study,
            mimetype=REPORT_MIMETYPE,  # not guessed from the name, which may have no suffix
        )
    # Same id, new bytes: the note's link and the dashboard stay valid
    artifact_id = existing["artifact_id"]
    with path.open("rb") as file:
        store.write(artifact_id, file)
    if existing.get("mimetype") != REPORT_MIMETYPE:  # guessed from a name like `r2` before
        storage_of(study).set_study_system_attr(
            study_id_of(study),
            attrs.ARTIFACTS_PREFIX + artifact_id,
            json.dumps({**existing, "mimetype": REPORT_MIMETYPE}),
        )
    return artifact_id


def _study_artifacts(study: optuna.Study) -> dict[str, dict]:
    """Each artifact's record (artifact_id, filename, mimetype, ...) by its file name."""
    # Not optuna.artifacts.get_all_artifact_meta: it fails on the null entry the dashboard leaves
    # behind when someone deletes an artifact there.
    system_attrs = storage_of(study).get_study_system_attrs(study_id_of(study))
    return {meta["filename"]: meta for meta in artifact_records(system_attrs)}


def artifact_records(system_attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """The artifacts' records among a study's system attributes, as upload_artifact writes them
    (JSON text); the null entry the dashboard leaves on a deletion, or another tool's entry of
    another shape, is none."""
    records = []
    for key, value in system_attrs.items():
        if not key.startswith(attrs.ARTIFACTS_PREFIX) or not isinstance(value, str):
            continue
        try:
            record = json.loads(value)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def best_trial_line(study: optuna.Study) -> str:
    trials = study.get_trials(deepcopy=False)
    summary = _counts_text(shown_counts(trials))
    best = attrs.best_trial(trials)
    if best is None:
        return f"No complete trial yet ({summary})."
    return (
        f"Best: trial {best.number}, val top-1 {best.value:.2%} "
        f"({attrs.settings_text(attrs.trial_config(best))}); {summary}."
    )


def _counts_text(counts: dict[str, int]) -> str:
    """`12 trials, 5 complete, 3 pruned, 1 stopped to resume (...)`: asha's queued continuations
    left out, as no trials; paused, stopped and failed only where there are any."""
    words = [
        f"{sum(counts.values())} trials",
        f"{counts['complete']} complete",
        f"{counts['pruned']} pruned",
    ]
    if counts["paused"] + counts["promoted"]:
        words.append(f"{counts['paused']} paused, {counts['promoted']} promoted")
    if counts["stopped"]:
        # The dashboard draws them as Optuna does: FAIL, red bars in its timeline
        words.append(
            f"{counts['stopped']} stopped to resume (shown as FAIL: each resumes as a retry, a "
            "new trial, from its last checkpoint, or from epoch 1 when it was stopped before one)"
        )
    if counts["fail"]:
        words.append(f"{counts['fail']} failed")
    return ", ".join(words)


def _save_note_section(study: optuna.Study, heading: str, body: str) -> None:
    import optuna_dashboard

    optuna_dashboard.save_note(
        study, _replace_section(optuna_dashboard.get_note(study), heading, body)
    )


def _replace_section(note: str, heading: str, body: str) -> str:
    """`note` with its section `## heading` replaced by `body`, or the section added."""
    ours = "|".join(re.escape(name) for name in NOTE_HEADINGS)
    head, *rest = re.split(rf"(?m)^## ({ours})\n", note)  # head, then (heading, text) pairs
    sections = dict(zip(rest[::2], rest[1::2]))
    sections[heading] = f"\n{body.strip()}\n\n"
    ordered = "".join(f"## {name}\n{sections[name]}" for name in NOTE_HEADINGS if name in sections)
    return f"{head.rstrip()}\n\n{ordered}" if head.strip() else ordered


def _fenced(text: str, language: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    # A fence longer than any backtick run inside cannot close early
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
