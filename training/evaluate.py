"""Accuracy, recall and confusion matrix of a model artifact on a FER2013 split.

Evaluation goes through ``ExpressionClassifier``, the serving path itself,
including its test-time augmentation, so the figures are what the worker does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.labels import LABELS, NUM_CLASSES
from shared.vision.classify import ExpressionClassifier
from training.data import Split

BATCH = 256


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    macro_recall: float
    per_class_recall: dict[str, float]
    confusion: list[list[int]]
    n: int
    split: str
    model_version: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "macro_recall": self.macro_recall,
            "per_class_recall": self.per_class_recall,
            "confusion_matrix": self.confusion,
            "labels": list(LABELS),
            "n": self.n,
            "split": self.split,
            "model_version": self.model_version,
        }


def metrics(
    labels: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64], split: str, version: str
) -> Evaluation:
    """Top-1 accuracy, per-class and macro recall, confusion (rows = true label)."""
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    support = confusion.sum(axis=1)
    recall = np.divide(np.diag(confusion), support, out=np.zeros(NUM_CLASSES), where=support > 0)
    present = support > 0
    return Evaluation(
        accuracy=float(np.trace(confusion) / max(1, confusion.sum())),
        macro_recall=float(recall[present].mean()) if present.any() else 0.0,
        per_class_recall={LABELS[i]: float(recall[i]) for i in range(NUM_CLASSES)},
        confusion=confusion.tolist(),
        n=int(confusion.sum()),
        split=split,
        model_version=version,
    )


def split_probabilities(classifier: ExpressionClassifier, split: Split) -> npt.NDArray[np.float32]:
    """(N, 7) served probabilities, test-time augmentation included, for every image."""
    parts = [np.zeros((0, NUM_CLASSES), dtype=np.float32)]
    for start in range(0, len(split), BATCH):
        batch = split.images[start : start + BATCH][..., np.newaxis].astype(np.float32)
        parts.append(classifier.predict_batch(batch))
    return np.concatenate(parts)


def evaluate(model_dir: Path, split: Split, split_name: str) -> Evaluation:
    classifier = ExpressionClassifier(model_dir)
    predicted = split_probabilities(classifier, split).argmax(axis=1)
    return metrics(split.labels, predicted, split_name, classifier.version)


def format_report(result: Evaluation) -> str:
    """Human-readable summary: accuracy, recalls and the confusion matrix."""
    lines = [
        f"model {result.model_version} on {result.split} ({result.n} images)",
        f"accuracy      {result.accuracy:.4f}",
        f"macro recall  {result.macro_recall:.4f}",
        "per-class recall:",
    ]
    lines += [f"  {label:<9} {value:.4f}" for label, value in result.per_class_recall.items()]
    width = max(len(label) for label in LABELS) + 1
    lines.append("confusion matrix (rows: true label, columns: predicted):")
    lines.append(" " * width + "".join(f"{label[:7]:>8}" for label in LABELS))
    for label, row in zip(LABELS, result.confusion, strict=True):
        lines.append(f"{label:<{width}}" + "".join(f"{v:>8}" for v in row))
    return "\n".join(lines)
