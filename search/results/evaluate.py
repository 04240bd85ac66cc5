"""`hpsearch evaluate`: score saved weights (from `train` or `export`) on a data set's val split.

Top-1 and the loss come from the trainer's own `evaluate`, so they match what training reported;
a forward hook sees the same logits to count top-k hits and the confusion matrix, so the images
pass through the network once. A notebook calls `evaluate_weights(path, data)`. What a score
holds and how it is printed, without torch: search.results.evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from search.results.evaluation import Evaluation
from trainer.augment import Batch, eval_batches
from trainer.data import ImageData, load_val_data
from trainer.device import resolve_device
from trainer.epoch import EVAL_BATCH_SIZE, evaluate
from trainer.sources import class_names
from trainer.weights import build_network, check_fits, load_weights

TOP_K = 5


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
        if labels is None:
            raise RuntimeError("the model ran before any labels were kept: feed it _Tally.batches")
        predicted = logits.argmax(dim=1)
        size = self.confusion.shape[0]
        self.confusion += torch.bincount(labels * size + predicted, minlength=size * size).view(
            size, size
        )
        self.top_k_hits += (
            (logits.topk(self.top_k, dim=1).indices == labels[:, None]).any(dim=1).sum()
        )


def score(
    model: torch.nn.Module,
    data: ImageData,
    image_size: int,
    *,
    progress: bool = True,
    name: str = "",
) -> tuple[float, float, _Tally]:
    """(top-1, mean loss, tally) over data.val, which must already be on the model's device."""
    device = next(model.parameters()).device
    batch_size = EVAL_BATCH_SIZE[device.type]
    batches = eval_batches(data.val, batch_size=batch_size, image_size=image_size)
    tally = _Tally(len(data.classes), device)
    bar = tqdm(
        tally.batches(batches),
        total=math.ceil(len(data.val) / batch_size),
        desc=f"evaluating {name}".strip(),
        unit="batch",
        disable=not progress,
        leave=False,
    )
    hook = model.register_forward_hook(tally)
    try:
        top1, loss = evaluate(model, bar)
    finally:
        hook.remove()
    return top1, loss, tally


def evaluate_weights(
    weights: str | Path,
    data: str | Path | ImageData,
    *,
    image_size: int | None = None,
    cache_dir: Path | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> Evaluation:
    """Score a weights file on the val split of a folder, archive, Imagenette name or ImageData."""
    # Whatever the weights alone can refuse, and their classes against the folder's listing, is
    # refused before a single image is decoded or cached
    loaded = load_weights(weights)
    image_size = image_size or loaded.image_size
    device = resolve_device(device)
    model = build_network(loaded, device)
    if isinstance(data, ImageData):
        check_fits(loaded, data.classes, data.source)
    else:
        source = str(data)  # as the user named it: a folder, an archive, an Imagenette name
        # val/ alone unless the whole data set is kept already: train/ is never scored
        data = load_val_data(
            data,
            image_size,
            cache_dir=cache_dir,
            progress=progress,
            check=lambda listing: check_fits(loaded, listing.classes, source),
        )
    top1, loss, tally = score(
        model, data.to(device), image_size, progress=progress, name=loaded.path.name
    )
    confusion = tally.confusion.cpu()
    images = int(confusion.sum())
    per_class = {
        name: (
            int(confusion[index, index]) / int(confusion[index].sum())
            if confusion[index].sum()
            else None
        )
        for index, name in enumerate(data.classes)
    }
    return Evaluation(
        weights=str(loaded.path),
        model=loaded.architecture,
        data=data.source,
        classes=data.classes,
        class_names=class_names(data.classes),
        image_size=image_size,
        images=images,
        top1=top1,
        top_k=tally.top_k,
        top5=int(tally.top_k_hits) / max(images, 1),
        val_loss=loss,
        per_class=per_class,
        confusion=tuple(tuple(row) for row in confusion.tolist()),
    )
