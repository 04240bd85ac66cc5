"""`hpsearch dashboard`: optuna-dashboard on the study storage, and the notes and artifacts that
report, export and the workers attach to a study so the team sees their findings there.

optuna-dashboard has no authentication and anyone who reaches it can delete a study, so it
binds 127.0.0.1 unless told otherwise, and says so loudly when told.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import sys
import types
from datetime import datetime, timezone
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import TrialState

from search.storage import STORAGE_ENV, masked, normalized, open_storage, resolve_storage_url

ARTIFACTS_ENV = "HPSEARCH_ARTIFACTS"
ARTIFACTS_ATTR_PREFIX = "artifacts:"  # where optuna.artifacts.upload_artifact records a study's artifacts
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
REPORT_HEADING = "Report"
BEST_PARAMS_HEADING = "Best parameters"
# The study note is shared by the sections below, each replaced whole on refresh; text a person
# writes above the first of them is kept.
NOTE_HEADINGS = (REPORT_HEADING, BEST_PARAMS_HEADING)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("dashboard", help="serve optuna-dashboard on the study storage")
    parser.add_argument("--storage", metavar="URL",
                        help=f"storage URL (default: ${STORAGE_ENV} or sqlite:///hpsearch.db)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to bind (default 127.0.0.1; the dashboard has no login, "
                             "so reach it from elsewhere through an SSH tunnel)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default 8080")
    parser.add_argument("--artifacts", type=Path, metavar="DIR",
                        help=f"folder of report artifacts (default: ${ARTIFACTS_ENV}, else 'artifacts' "
                             "next to the SQLite file or in the current folder)")
    parser.set_defaults(handler=_dashboard)


def _dashboard(args: argparse.Namespace) -> int:
    url = resolve_storage_url(args.storage)
    serve(url, host=args.host, port=args.port, artifact_dir=artifact_dir_for(url, args.artifacts))
    return 0


def serve(url: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          artifact_dir: Path | None = None) -> None:
    """Serve the dashboard until interrupted."""
    storage = open_storage(url)  # a wrong URL fails here with our message, not in a request later
    artifact_dir = artifact_dir or artifact_dir_for(url)
    warn_if_exposed(host, "optuna-dashboard has no login: anyone who reaches it can delete studies")
    print(f"dashboard on http://{_url_host(host)}:{port}/dashboard/ for studies in {masked(url)}; "
          f"artifacts in {artifact_dir}", flush=True)
    import optuna_dashboard  # imported on use: a GPU worker machine may run without it

    optuna_dashboard.run_server(storage, host=host, port=port, artifact_store=artifact_store(artifact_dir))


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def warn_if_exposed(host: str, danger: str) -> None:
    if not is_loopback(host):
        print(f"hpsearch: warning: listening on {host}, reachable from other machines; {danger}. "
              "Bind 127.0.0.1 and use an SSH tunnel (ssh -L PORT:127.0.0.1:PORT HOST) instead.",
              file=sys.stderr, flush=True)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def artifact_dir_for(url: str, explicit: str | Path | None = None) -> Path:
    """Where a study's artifacts live: the flag, then $HPSEARCH_ARTIFACTS, then beside a SQLite file."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ARTIFACTS_ENV):
        return Path(os.environ[ARTIFACTS_ENV])
    parsed = normalized(url)
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database).parent / "artifacts"
    return Path("artifacts")


def artifact_store(artifact_dir: str | Path) -> FileSystemArtifactStore:
    Path(artifact_dir).mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(Path(artifact_dir))


def attach_report(study: optuna.Study, html_path: str | Path, artifact_dir: str | Path) -> str:
    """Upload the report as an artifact of the study (replacing an earlier upload of the same file
    name) and summarise the best trial in the study note with a link to it; returns the artifact id."""
    html_path = Path(html_path)
    artifact_id = _replace_artifact(study, html_path, artifact_store(artifact_dir))
    link = f"[{html_path.name}](/artifacts/{study._study_id}/{artifact_id})"
    body = f"{_best_trial_line(study)}\n\nPlots: {link} (also among the study's artifacts), updated {_now()}."
    _save_note_section(study, REPORT_HEADING, body)
    return artifact_id


def attach_best_params(study: optuna.Study, text: str, fmt: str) -> None:
    """Put the exported best parameters (`text`, in format `fmt`: json, toml, yaml) in the study note."""
    if not re.fullmatch(r"[A-Za-z0-9_+-]+", fmt):
        raise ValueError(f"fmt must be a format name such as 'json', 'toml' or 'yaml', but got {fmt!r}")
    _save_note_section(study, BEST_PARAMS_HEADING, f"Exported {_now()}:\n\n{_fenced(text, fmt)}")


def note_trial(study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial, text: str) -> None:
    """Replace the trial's note (Markdown) with `text`: why it failed, when it was resumed."""
    # save_note wants a live Trial, but fail reasons are written after the trial ended, when only
    # a FrozenTrial is at hand; building optuna.Trial for it would call the sampler's before_trial.
    target = trial if isinstance(trial, optuna.Trial) else types.SimpleNamespace(
        storage=study._storage, study=study, _trial_id=trial._trial_id)
    import optuna_dashboard

    optuna_dashboard.save_note(target, text)


def _replace_artifact(study: optuna.Study, path: Path, store: FileSystemArtifactStore) -> str:
    existing = _study_artifact_ids(study).get(path.name)
    if existing is None:
        return upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)
    with path.open("rb") as file:  # same id, new bytes: the note's link and the dashboard stay valid
        store.write(existing, file)
    return existing


def _study_artifact_ids(study: optuna.Study) -> dict[str, str]:
    # Not optuna.artifacts.get_all_artifact_meta: it fails on the null entry the dashboard leaves
    # behind when someone deletes an artifact there.
    attrs = study._storage.get_study_system_attrs(study._study_id)
    metas = [json.loads(value) for key, value in attrs.items() if key.startswith(ARTIFACTS_ATTR_PREFIX)]
    return {meta["filename"]: meta["artifact_id"] for meta in metas if meta}


def _best_trial_line(study: optuna.Study) -> str:
    trials = study.get_trials(deepcopy=False)
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    counts = f"{len(trials)} trials, {len(complete)} complete"
    if not complete:
        return f"No complete trial yet ({counts})."
    best = max(complete, key=lambda trial: trial.value)
    params = ", ".join(f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
                       for name, value in best.params.items())
    return f"Best: trial {best.number}, val top-1 {best.value:.2%} ({params}); {counts}."


def _save_note_section(study: optuna.Study, heading: str, body: str) -> None:
    import optuna_dashboard

    optuna_dashboard.save_note(study, _replace_section(optuna_dashboard.get_note(study), heading, body))


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
    fence = "`" * max(3, longest + 1)  # a fence longer than any backtick run inside cannot close early
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
