"""What `hpsearch evaluate` found, and how it prints it: a plain record, without torch, so that the
command and the Python API check their input before torch is loaded to score
(search.results.evaluate scores)."""

from __future__ import annotations

from typing import Any, NamedTuple


class Evaluation(NamedTuple):
    weights: str
    model: str  # the network the weights file holds, rebuilt by name
    data: str
    classes: tuple[str, ...]  # the class folders, in label order
    class_names: tuple[str, ...]  # what a person calls them: tench for n01440764
    image_size: int
    images: int
    top1: float  # 0..1
    top_k: int  # min(5, number of classes)
    top5: float  # 0..1, correct class among the top_k
    val_loss: float  # mean cross-entropy
    # top-1 among each class's images; None for a class with none
    per_class: dict[str, float | None]
    # Row: true class, column: predicted class, in `classes` order
    confusion: tuple[tuple[int, ...], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            **self._asdict(),
            "classes": list(self.classes),
            "class_names": list(self.class_names),
            "confusion": [list(row) for row in self.confusion],
        }


def format_evaluation(evaluation: Evaluation) -> str:
    labels = [
        name if name == folder else f"{name} ({folder})"
        for name, folder in zip(evaluation.class_names, evaluation.classes)
    ]
    width = max(len(label) for label in labels)
    lines = [
        f"{evaluation.weights} ({evaluation.model}) on {evaluation.data} "
        f"({evaluation.images} val images, {evaluation.image_size} px)",
        f"top-1 {evaluation.top1:.2%}   top-{evaluation.top_k} {evaluation.top5:.2%}   "
        f"val loss {evaluation.val_loss:.3f}",
        "per class:",
    ]
    for label, accuracy in zip(labels, evaluation.per_class.values()):
        lines.append(f"  {label:<{width}}  " + ("-" if accuracy is None else f"{accuracy:.2%}"))
    return "\n".join(lines)
