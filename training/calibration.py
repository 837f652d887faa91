"""Calibration and FER+ agreement of a model's probabilities.

Expected calibration error (Guo et al. 2017): the gap between confidence and
accuracy, averaged over equal-width confidence bins weighted by their size.
FER+ majority labels (ten annotators per image, Barsoum et al. 2016) are the
truer label users care about: the class with most votes among the seven
FER2013 classes; images without such votes, or with a tie, are left out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

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
