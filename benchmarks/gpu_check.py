"""The Python half of benchmarks/gpu_check.sh: its study file, a fallback search, and its summary.

    python3 -m benchmarks.gpu_check study OUT.toml --data DIR --image-size 128 --epochs 20 \
        --minutes 4 [--per-class N]
    python3 -m benchmarks.gpu_check search OUT.toml --storage sqlite:///... \
        --device cuda  # if -m search cannot start
    python3 -m benchmarks.gpu_check syncs --device cuda --image-size 128 --batch-size 256 \
        --json syncs.json
    python3 -m benchmarks.gpu_check summary --storage sqlite:///... --study gpu-check \
        --throughput T.json --models M.json --json S.json

`study` writes studies/imagenette.toml with the check's settings ([study] timeout_minutes, a trial
budget the timeout ends first, the data and image size, the epochs), checked by the same loader
as `hpsearch run`. `syncs` counts the times our training steps make the host wait for the GPU,
with CUDA's sync debug mode: only the NaN check every LOSS_CHECK_EVERY steps and the epoch's last
loss should. `summary` reads the study, the throughput, per-model (benchmarks/model_speed.py) and
sync figures and prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import tomllib

BASE_STUDY = Path("studies/imagenette.toml")
STUDY_NAME = "gpu-check"
TRIAL_BUDGET = 1000  # more than any GPU finishes in the check: the timeout ends the search
GOALS = {
    "images_per_second": 25_000,
    "ratio": 3.0,
    "seconds_per_trial": 15.0,
    "best_val_top1": 0.88,
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + " }"


def toml_text(document: dict[str, Any]) -> str:
    """A study file's TOML: sections of plain keys, and arrays of tables such as [[warm_start]]."""
    blocks = []
    for name, section in document.items():
        tables = section if isinstance(section, list) else [section]
        header = f"[[{name}]]" if isinstance(section, list) else f"[{name}]"
        for table in tables:
            blocks.append(
                "\n".join(
                    [header, *(f"{key} = {toml_value(value)}" for key, value in table.items())]
                )
            )
    return "\n\n".join(blocks) + "\n"


def timed_study(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """BASE_STUDY, named `name`, searching for args.minutes on args.data at args.image_size and
    args.per_class, args.epochs a trial (a trial budget the timeout ends first)."""
    document = tomllib.loads(BASE_STUDY.read_text())
    document["study"].update(name=name, trials=TRIAL_BUDGET, timeout_minutes=args.minutes)
    document["data"].update(source=str(Path(args.data).resolve()), image_size=args.image_size)
    if args.per_class:
        document["data"]["per_class"] = args.per_class
    document["train"]["epochs"] = args.epochs
    return document


def write_study(args: argparse.Namespace) -> None:
    from search.studyfile import load_study_config

    document = timed_study(STUDY_NAME, args)
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(
        f"# {BASE_STUDY} with the GPU check's settings, written by benchmarks/gpu_check.py\n"
        + toml_text(document)
    )
    load_study_config(args.path)  # the check fails here, not minutes later, if the file is wrong
    print(f"wrote {args.path}")


def run_search(args: argparse.Namespace) -> None:
    """The search as `hpsearch run` does it, for a machine where the CLI's optional imports fail."""
    import warnings

    import optuna

    from search.launch.local import launch
    from search.results.status import format_status, study_status
    from search.run.worker import WorkerOptions
    from search.study.optuna_compat import storage_of
    from search.studyfile import load_study_config

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    config = load_study_config(args.path)
    study = launch(config, WorkerOptions(args.storage, device=args.device, progress=False))
    print(format_status(study_status(storage_of(study), config.study.name)))


def count_syncs(args: argparse.Namespace) -> None:
    import itertools
    import warnings

    import torch

    from trainer import TrainConfig
    from trainer.augment import train_batches
    from trainer.data import ImageSplit
    from trainer.epoch import LOSS_CHECK_EVERY, train_one_epoch
    from trainer.model import build_model
    from trainer.optim import build_optimizer, build_scheduler

    device = torch.device(args.device)
    if device.type != "cuda":
        print(f"sync check: CUDA only, skipped on {device}")
        args.json.write_text(json.dumps({"device": str(device), "skipped": True}) + "\n")
        return
    steps = LOSS_CHECK_EVERY + 10  # one NaN check inside the epoch, one at its end
    images = torch.randint(
        0,
        256,
        (args.batch_size * 4, 3, args.image_size, args.image_size),
        dtype=torch.uint8,
        device=device,
    )
    split = ImageSplit(images, torch.randint(0, 10, (len(images),), device=device))
    generator = torch.Generator(device=device).manual_seed(0)

    def batches(count: int):  # epoch after epoch of the four-batch split
        return itertools.islice(
            itertools.chain.from_iterable(
                train_batches(
                    split,
                    batch_size=args.batch_size,
                    image_size=args.image_size,
                    min_scale=0.35,
                    generator=generator,
                )
                for _ in itertools.count()
            ),
            count,
        )

    results = {}
    for optimizer_name in ("sgd", "adam", "ranger"):
        config = TrainConfig(
            optimizer=optimizer_name, lr=1e-3, momentum=0.9 if optimizer_name == "sgd" else None
        )
        model = build_model(10, device)
        optimizer = build_optimizer(config, model.parameters())
        scheduler = build_scheduler(config, optimizer, steps)
        # Lazy state and cuDNN choices first
        train_one_epoch(model, batches(3), optimizer, scheduler, epoch=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                train_one_epoch(model, batches(steps), optimizer, scheduler, epoch=1)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = [
            f"{warning.filename}:{warning.lineno}"
            for warning in caught
            if "synchroniz" in str(warning.message)
        ]
        expected = steps // LOSS_CHECK_EVERY + 1
        results[optimizer_name] = {
            "steps": steps,
            "syncs": len(syncs),
            "expected": expected,
            "where": sorted(set(syncs)),
        }
        print(
            f"sync check {optimizer_name:6s}: {len(syncs)} host waits in {steps} steps "
            f"(expected {expected}) at {sorted(set(syncs))}"
        )
    args.json.write_text(json.dumps({"device": str(device), **results}, indent=2) + "\n")


def summarize(args: argparse.Namespace) -> None:
    import optuna
    from optuna.trial import TrialState

    from search import attrs
    from search.study.epochs_budget import epochs_trained
    from search.study.promotion import shown_counts

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=args.study, storage=args.storage)
    trials = study.get_trials(deepcopy=False)
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    best = attrs.best_trial(trials)
    epochs = max(
        (trial.user_attrs.get("config", {}).get("epochs", 0) for trial in trials), default=0
    )
    # Trials that trained every epoch themselves: an asha continuation (or a retry) restored its
    # first epochs from a checkpoint, and its times cover only the epochs after them
    finished = [
        trial
        for trial in complete
        if trial.user_attrs.get(attrs.EPOCHS_RUN) == epochs
        and not attrs.stored_number(trial, attrs.RESUMED_FROM_EPOCH)
    ]
    # As status shows them: asha's paused trials apart from the pruned ones, its continuations
    # that never ran left out
    counts = shown_counts(trials)
    # Start to finish as the storage saw it: model
    # set-up and checkpoints included, unlike "seconds".
    full = [(trial.datetime_complete - trial.datetime_start).total_seconds() for trial in finished]
    epoch_seconds = [
        trial.user_attrs["seconds"] for trial in finished if "seconds" in trial.user_attrs
    ]
    rates = [
        trial.user_attrs["images_per_second"]
        for trial in trials
        if "images_per_second" in trial.user_attrs
    ]
    throughput = _read_json(args.throughput)
    syncs = _read_json(args.syncs)
    model_speed = _read_json(args.models)
    models = model_speed.get("models", {})
    checkpoint_share = [
        trial.user_attrs["checkpoint_seconds"] / trial.user_attrs["seconds"]
        for trial in finished
        if trial.user_attrs.get("checkpoint_seconds") is not None
        and trial.user_attrs.get("seconds")
    ]
    summary = {
        "device": throughput.get("gpu") or throughput.get("cpu"),
        "image_size": throughput.get("image_size"),
        "batch_size": throughput.get("batch_size"),
        "throughput_baseline_images_per_second": throughput.get("baseline", {}).get(
            "images_per_second"
        ),
        "throughput_ours_images_per_second": throughput.get("ours", {}).get("images_per_second"),
        "throughput_ratio": throughput.get("ratio_ours_to_baseline"),
        "throughput_ours_compiled_images_per_second": throughput.get("ours compiled", {}).get(
            "images_per_second"
        ),
        "throughput_compiled_ratio": throughput.get("ratio_ours_compiled_to_baseline"),
        "compile_seconds": throughput.get("compile_seconds"),
        "model_images_per_second": {
            name: figures["images_per_second"] for name, figures in models.items()
        },
        "host_waits_per_epoch_of_syncs_check": {
            name: result["syncs"] for name, result in syncs.items() if isinstance(result, dict)
        },
        "checkpoint_share_of_trial": statistics.median(checkpoint_share)
        if checkpoint_share
        else None,
        "trials_complete": counts["complete"],
        "trials_paused": counts["paused"],  # not promoted (yet)
        "trials_pruned": counts["pruned"],
        "trials_failed": counts["fail"],
        "epochs_per_trial": epochs,
        "best_val_top1": best.value if best else None,
        "best_config": attrs.trial_config(best) if best else None,
        "search_images_per_second": statistics.median(rates) if rates else None,
        f"seconds_per_{epochs}_epoch_trial": statistics.median(full) if full else None,
        f"seconds_of_epochs_per_{epochs}_epoch_trial": statistics.median(epoch_seconds)
        if epoch_seconds
        else None,
        "epochs_trained": epochs_trained(trials),  # restored epochs not counted again
        "goals_at_128px_on_h100_h200": GOALS,
    }
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    rows = [
        ("baseline images/s", summary["throughput_baseline_images_per_second"], ""),
        (
            "ours images/s",
            summary["throughput_ours_images_per_second"],
            f">= {GOALS['images_per_second']:,}",
        ),
        ("ours / baseline", summary["throughput_ratio"], f">= {GOALS['ratio']:.0f}x"),
        (
            "ours compiled images/s",
            summary["throughput_ours_compiled_images_per_second"],
            f"compiling took {summary['compile_seconds']:.0f} s"
            if summary["compile_seconds"]
            else "",
        ),
        *(
            (
                f"{name} training images/s",
                figures["images_per_second"],
                f"{figures['cost_vs_baseline']:.2f}x the time of {model_speed['baseline']}",
            )
            for name, figures in models.items()
        ),
        (
            "host waits in the sync check",
            ", ".join(
                f"{name} {count}"
                for name, count in summary["host_waits_per_epoch_of_syncs_check"].items()
            )
            or None,
            "2 each (the NaN checks)",
        ),
        ("checkpoint writing / trial", summary["checkpoint_share_of_trial"], "< 5%"),
        (
            "trials done/paused/pruned/failed",
            f"{summary['trials_complete']} / {summary['trials_paused']} / "
            f"{summary['trials_pruned']} / {summary['trials_failed']}",
            "",
        ),
        (
            f"seconds per {epochs}-epoch trial",
            summary[f"seconds_per_{epochs}_epoch_trial"],
            f"< {GOALS['seconds_per_trial']:.0f}",
        ),
        ("search images/s (median trial)", summary["search_images_per_second"], ""),
        ("best val top-1", summary["best_val_top1"], f">= {GOALS['best_val_top1']:.0%}"),
    ]
    print(
        f"\nGPU check on {summary['device']} ({summary['image_size']} px; "
        "goals are for 128 px on H100/H200)"
    )
    percentages = ("best val top-1", "checkpoint writing / trial")
    for label, value, goal in rows:
        shown = (
            "-"
            if value is None
            else value
            if isinstance(value, str)
            else f"{value:.2%}"
            if label in percentages
            else f"{value:,.2f}"
            if value < 100
            else f"{value:,.0f}"
        )
        print(f"  {label:34s} {shown:>14s}  {goal}")
    print(f"  best config: {summary['best_config']}")


def _read_json(path: Path | None) -> dict:
    return json.loads(path.read_text()) if path and path.exists() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    study = commands.add_parser("study")
    study.add_argument("path", type=Path)
    study.add_argument("--data", required=True)
    study.add_argument("--image-size", type=int, required=True)
    study.add_argument("--epochs", type=int, required=True)
    study.add_argument("--minutes", type=float, required=True)
    study.add_argument("--per-class", type=int)
    study.set_defaults(handler=write_study)
    search = commands.add_parser("search")
    search.add_argument("path", type=Path)
    search.add_argument("--storage", required=True)
    search.add_argument("--device", default="cuda")
    search.set_defaults(handler=run_search)
    syncs = commands.add_parser("syncs")
    syncs.add_argument("--device", default="cuda")
    syncs.add_argument("--image-size", type=int, default=128)
    syncs.add_argument("--batch-size", type=int, default=256)
    syncs.add_argument("--json", type=Path, required=True)
    syncs.set_defaults(handler=count_syncs)
    summary = commands.add_parser("summary")
    summary.add_argument("--storage", required=True)
    summary.add_argument("--study", default=STUDY_NAME)
    summary.add_argument("--throughput", type=Path)
    summary.add_argument("--syncs", type=Path)
    summary.add_argument("--models", type=Path)
    summary.add_argument("--json", type=Path, required=True)
    summary.set_defaults(handler=summarize)
    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()
