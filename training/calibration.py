"""Calibration and FER+ agreement of a model's probabilities.

Expected calibration error (Guo et al. 2017): the gap between confidence and
accuracy, averaged over equal-width confidence bins weighted by their size.
FER+ majority labels (ten annotators per image, Barsoum et al. 2016) are the
truer label users care about: the class with most votes among the seven
FER2013 classes; images without such votes, or with a tie, are left out.
The "uncertain" threshold is where a model's labels stop being more often
right than wrong: the served pipeline withholds labels under it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from training.data import Split

#: Equal-width confidence bins of the expected calibration error.
ECE_BINS = 15


def expected_calibration_error(
    probabilities: npt.NDArray[np.floating], labels: npt.NDArray[np.integer], bins: int = ECE_BINS
) -> float:
    """ECE of top-1 confidence against top-1 correctness, in 0..1."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(error)


def ferplus_majority(votes: npt.NDArray[np.floating]) -> npt.NDArray[np.int64]:
    """Each image's FER+ majority among the seven classes, or -1 (no votes, or a tie)."""
    top = votes.max(axis=1, keepdims=True)
    unique = (votes == top).sum(axis=1) == 1
    majority = votes.argmax(axis=1).astype(np.int64)
    majority[~unique | (top[:, 0] == 0)] = -1
    return majority


def ferplus_accuracy(
    probabilities: npt.NDArray[np.floating], votes: npt.NDArray[np.floating]
) -> tuple[float, int]:
    """Top-1 accuracy against FER+ majority labels, and how many images have one."""
    majority = ferplus_majority(votes)
    kept = majority >= 0
    hits = probabilities[kept].argmax(axis=1) == majority[kept]
    return float(hits.mean()), int(kept.sum())


#: Width of the confidence bins the "uncertain" threshold is read from: about
#: 150 PublicTest faces a bin in the 0.3..0.7 range where it falls.
UNCERTAIN_BIN = 0.05
#: A label is reported when faces of its confidence are labelled right at least this often.
UNCERTAIN_MIN_ACCURACY = 0.5
#: Bins with fewer faces say too little to move the threshold.
UNCERTAIN_MIN_BIN_FACES = 20


@dataclass(frozen=True)
class UncertainThreshold:
    """Where a model stops forcing a label, and what that costs and buys on a split."""

    #: Top probability under which a face is reported "uncertain" (no label).
    below: float
    #: Share of faces that keep a label, and their accuracy.
    coverage: float
    labelled_accuracy: float
    #: Accuracy the withheld labels would have had.
    withheld_accuracy: float | None
    accuracy: float

    def as_dict(self) -> dict[str, float | None]:
        return {k: (round(v, 4) if v is not None else None) for k, v in asdict(self).items()}


def uncertain_threshold(
    probabilities: npt.NDArray[np.floating],
    labels: npt.NDArray[np.integer],
    *,
    bin_width: float = UNCERTAIN_BIN,
    min_accuracy: float = UNCERTAIN_MIN_ACCURACY,
) -> UncertainThreshold:
    """The lowest confidence from which on every bin's labels are right at least
    ``min_accuracy`` of the time: below it a label is more likely wrong than right,
    so the face is reported as uncertain instead."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.arange(0.0, 1.0 + bin_width / 2, bin_width)
    below = 0.0
    # From the most confident bin down: stop at the first (non-empty) bin under the bar.
    for low, high in reversed(list(zip(edges[:-1], edges[1:], strict=True))):
        members = (confidence >= low) & (confidence < high if high < 1.0 else True)
        if members.sum() >= UNCERTAIN_MIN_BIN_FACES and correct[members].mean() < min_accuracy:
            below = float(high)
            break
    kept = confidence >= below
    return UncertainThreshold(
        below=round(below, 4),
        coverage=float(kept.mean()),
        labelled_accuracy=float(correct[kept].mean()) if kept.any() else 0.0,
        withheld_accuracy=float(correct[~kept].mean()) if (~kept).any() else None,
        accuracy=float(correct.mean()),
    )


def calibrate_artifact(
    model_dir: Path,
    split: Split,
    *,
    min_accuracy: float = UNCERTAIN_MIN_ACCURACY,
    apply: bool = False,
) -> UncertainThreshold:
    """Find ``model_dir``'s "uncertain" threshold on ``split`` (PublicTest) and record
    it, with what it costs and buys, in the artifact's metrics; with ``apply`` the
    model also serves it (``uncertain_below``).

    Not applied by default: class shares are counted over labelled faces, and the
    faces a threshold withholds are mostly the hard expressions (fear, sad, angry),
    so the shares would lean towards happy (docs/model-card.md)."""
    from shared.vision.artifact import read_metadata, write_metadata
    from shared.vision.classify import ExpressionClassifier
    from training.evaluate import split_probabilities

    probabilities = split_probabilities(ExpressionClassifier(model_dir), split)
    found = uncertain_threshold(probabilities, split.labels, min_accuracy=min_accuracy)
    meta = read_metadata(model_dir)
    metrics = {**meta.metrics, "uncertain": {**found.as_dict(), "min_accuracy": min_accuracy}}
    below = found.below if apply else meta.uncertain_below
    write_metadata(model_dir, replace(meta, uncertain_below=below, metrics=metrics))
    return found
