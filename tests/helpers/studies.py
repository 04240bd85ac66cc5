"""Study files for tests: small, fast searches on the images conftest makes."""

from __future__ import annotations

from pathlib import Path

import optuna


def write_study(
    folder: Path,
    data: Path,
    *,
    name: str = "test-study",
    trials: int = 4,
    epochs: int = 2,
    extra: str = "",
    space: str | None = None,
    pruner: str = 'kind = "median"\nwarmup_epochs = 0\nstartup_trials = 1',
    sampler: str = 'kind = "random"',
    points: str = "",
    image_size: int = 32,
) -> Path:
    """A study file training at 32 px for a couple of epochs; `extra` appends TOML tables;
    `points` ([[points]] tables) makes it a study of those points, with no [space]. A test of
    stops, kills and outages rather than of scores may train at 16 px (`image_size`), the
    smallest side ResNet-18 takes, whose steps cost about a quarter less (0.38 s against 0.50 s
    for a batch of 32 on one thread of a slow 2-core VM, 2026-12-07)."""
    if space is None:
        space = (
            'optimizer = ["sgd", "adam"]\nlr = { low = 1e-3, high = 0.1 }\n'
            "eps = { low = 1e-8, high = 1e-6 }\nmomentum = { low = 0.0, high = 0.9 }"
        )
    path = folder / f"{name}.toml"
    path.write_text(f"""
[study]
name = "{name}"
trials = {trials}
seed = 7

[data]
source = "{data}"
image_size = {image_size}
batch_size = 32

[train]
epochs = {epochs}
schedule = "cosine"

{"" if points else f"[space]{chr(10)}{space}"}

[sampler]
{sampler}

[pruner]
{pruner}

[heartbeat]
interval_seconds = 2
grace_seconds = 8
{extra}
{points}
""")
    return path


def trials_of(url: str, name: str = "test-study") -> list[optuna.trial.FrozenTrial]:
    """The trials of the study `name` as stored at `url`, read afresh."""
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
