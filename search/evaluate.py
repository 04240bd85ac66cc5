"""`hpsearch evaluate`: score saved weights (from `train` or `export`) on a data set's val split.

Top-1 and the loss come from the trainer's own `evaluate`, so they match what training reported;
a forward hook sees the same logits to count top-k hits and the confusion matrix, so the images
pass through the network once. A notebook calls `evaluate_weights(path, data)`.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

import torch
from tqdm.auto import tqdm

from trainer import ImageData, load_image_data, resolve_device
from trainer.augment import Batch, eval_batches
from trainer.checkpoint import WEIGHTS_NAME
from trainer.errors import ConfigError
from trainer.loop import EVAL_BATCH_SIZE, evaluate
from trainer.model import ARCHITECTURE, build_model

WEIGHTS_KEYS = ("architecture", "classes", "image_size", "model")  # what trainer.loop.weights_payload holds
TOP_K = 5
MAX_NAMED_CLASSES = 12  # an error lists at most this many class names of each side


@dataclass(frozen=True)
class Weights:
    path: Path
    architecture: str
    classes: tuple[str, ...]
    image_size: int  # px, the side the network was trained on
    config: dict[str, Any]
    state: dict[str, torch.Tensor]


class Evaluation(NamedTuple):
    weights: str
    data: str
    classes: tuple[str, ...]
    image_size: int
    images: int
    top1: float  # 0..1
    top_k: int  # min(5, number of classes)
    top5: float  # 0..1, correct class among the top_k
    val_loss: float  # mean cross-entropy
    per_class: dict[str, float | None]  # top-1 among each class's images; None for a class with none
    confusion: tuple[tuple[int, ...], ...]  # row: true class, column: predicted class, in `classes` order

    def to_json(self) -> dict[str, Any]:
        return {**self._asdict(), "classes": list(self.classes), "confusion": [list(row) for row in self.confusion]}


def load_weights(path: str | Path) -> Weights:
    """Read a weights file; anything else (a checkpoint, another file) is a ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    # torch.load fails on a foreign file with whatever its unpickler meets first (KeyError,
    # EOFError, UnpicklingError, RuntimeError), so any failure means "not a weights file".
    except Exception:  # noqa: BLE001
        raise ConfigError(f"{path} is not a weights file: torch cannot read it; expected the {WEIGHTS_NAME} that "
                          f"`hpsearch train --checkpoint-dir` writes, or the NAME.weights.pt of `hpsearch export`") \
            from None
    missing = [key for key in WEIGHTS_KEYS if not isinstance(payload, dict) or key not in payload]
    if missing:
        raise ConfigError(f"{path} is not a weights file saved by `hpsearch train`: it has no "
                          f"{', '.join(missing)}{_checkpoint_hint(payload)}")
    return Weights(path, str(payload["architecture"]), tuple(payload["classes"]), int(payload["image_size"]),
                   dict(payload.get("config") or {}), payload["model"])


def _checkpoint_hint(payload: Any) -> str:
    if isinstance(payload, dict) and "optimizer" in payload and "model" in payload:
        return f" (it is a training checkpoint; use the {WEIGHTS_NAME} beside it)"
    return ""


def check_fits(weights: Weights, classes: tuple[str, ...], data_name: str) -> None:
    """The weights must be a ResNet-18 trained on exactly these classes, in this order."""
    if weights.architecture != ARCHITECTURE:
        raise ConfigError(f"{weights.path} holds a {weights.architecture!r} network, but evaluate scores "
                          f"{ARCHITECTURE!r} networks")
    if tuple(weights.classes) != tuple(classes):
        raise ConfigError(f"{weights.path} was trained on {len(weights.classes)} classes "
                          f"({_names(weights.classes)}), but {data_name} has {len(classes)} classes "
                          f"({_names(classes)})")


def _names(classes: tuple[str, ...]) -> str:
    shown = ", ".join(classes[:MAX_NAMED_CLASSES])
    return shown + (f", ... {len(classes) - MAX_NAMED_CLASSES} more" if len(classes) > MAX_NAMED_CLASSES else "")


def build_network(weights: Weights, device: torch.device) -> torch.nn.Module:
    model = build_model(len(weights.classes), device)
    try:
        model.load_state_dict(weights.state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise ConfigError(f"{weights.path} does not fit a {ARCHITECTURE} with {len(weights.classes)} classes: "
                          f"{first[1].strip() if len(first) > 1 else first[0]}") from None
    return model


class _Tally:
    """Top-k hits and the confusion matrix, from the logits a forward hook sees."""

    def __init__(self, num_classes: int, device: torch.device):
        self.top_k = min(TOP_K, num_classes)
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
        self.top_k_hits = torch.zeros((), dtype=torch.long, device=device)
        self.labels: torch.Tensor | None = None

    def batches(self, batches: Iterable[Batch]) -> Iterator[Batch]:
        # evaluate() calls the model on each batch as soon as it takes it, so the hook that
        # follows sees the logits of the labels kept here.
        for images, labels in batches:
            self.labels = labels
            yield images, labels

    def __call__(self, module: torch.nn.Module, inputs: Any, logits: torch.Tensor) -> None:
        labels = self.labels
        predicted = logits.argmax(dim=1)
        size = self.confusion.shape[0]
        self.confusion += torch.bincount(labels * size + predicted, minlength=size * size).view(size, size)
        self.top_k_hits += (logits.topk(self.top_k, dim=1).indices == labels[:, None]).any(dim=1).sum()


def score(model: torch.nn.Module, data: ImageData, image_size: int, *, progress: bool = True,
          name: str = "") -> tuple[float, float, _Tally]:
    """(top-1, mean loss, tally) over data.val, which must already be on the model's device."""
    device = next(model.parameters()).device
    batch_size = EVAL_BATCH_SIZE[device.type]
    batches = eval_batches(data.val, batch_size=batch_size, image_size=image_size)
    tally = _Tally(len(data.classes), device)
    bar = tqdm(tally.batches(batches), total=math.ceil(len(data.val) / batch_size), desc=f"evaluating {name}".strip(),
               unit="batch", disable=not progress, leave=False)
    hook = model.register_forward_hook(tally)
    try:
        top1, loss = evaluate(model, bar)
    finally:
        hook.remove()
    return top1, loss, tally


def evaluate_weights(weights: str | Path, data: str | Path | ImageData, *, image_size: int | None = None,
                     cache_dir: Path | None = None, device: str | torch.device = "auto",
                     progress: bool = True) -> Evaluation:
    """Score a weights file on a data set's val split (a folder, archive, Imagenette name or loaded data)."""
    loaded = load_weights(weights)
    image_size = image_size or loaded.image_size
    device = resolve_device(device)
    if not isinstance(data, ImageData):
        data = load_image_data(data, image_size, cache_dir=cache_dir, progress=progress)
    check_fits(loaded, data.classes, data.source)
    model = build_network(loaded, device)
    top1, loss, tally = score(model, data.to(device), image_size, progress=progress, name=loaded.path.name)
    confusion = tally.confusion.cpu()
    images = int(confusion.sum())
    per_class = {name: (int(confusion[index, index]) / int(confusion[index].sum()) if confusion[index].sum() else None)
                 for index, name in enumerate(data.classes)}
    return Evaluation(weights=str(loaded.path), data=data.source, classes=data.classes, image_size=image_size,
                      images=images, top1=top1, top_k=tally.top_k, top5=int(tally.top_k_hits) / max(images, 1),
                      val_loss=loss, per_class=per_class, confusion=tuple(tuple(row) for row in confusion.tolist()))


def format_evaluation(evaluation: Evaluation) -> str:
    width = max(len(name) for name in evaluation.classes)
    lines = [f"{evaluation.weights} on {evaluation.data} ({evaluation.images} val images, {evaluation.image_size} px)",
             f"top-1 {evaluation.top1:.2%}   top-{evaluation.top_k} {evaluation.top5:.2%}   "
             f"val loss {evaluation.val_loss:.3f}", "per class:"]
    for name, accuracy in evaluation.per_class.items():
        lines.append(f"  {name:<{width}}  " + ("-" if accuracy is None else f"{accuracy:.2%}"))
    return "\n".join(lines)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("evaluate", help="score saved weights on a data set's val split")
    parser.add_argument("weights", type=Path, metavar="WEIGHTS", help="weights.pt from train, or NAME.weights.pt "
                                                                      "from export")
    parser.add_argument("--data", required=True, help="image folder with train/ and val/, a .tar.gz of one, or "
                                                      "imagenette-160 | imagenette-320 | imagenette-full")
    parser.add_argument("--image-size", type=int, help="px (default: the size the weights were trained at)")
    parser.add_argument("--cache-dir", type=Path, help="where decoded images are cached")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE.html",
                        help="also write the confusion matrix as a self-contained Plotly page")
    parser.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    evaluation = evaluate_weights(args.weights, args.data, image_size=args.image_size, cache_dir=args.cache_dir,
                                  device=args.device, progress=True)
    if args.output is not None:
        from search.report_figures import write_confusion_page

        write_confusion_page(evaluation, args.output)
    print(json.dumps(evaluation.to_json()) if args.json else format_evaluation(evaluation))
    return 0
