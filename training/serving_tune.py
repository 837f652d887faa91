"""How a model artifact is served: its test-time zoom and which faces get flip TTA.

A network trained with zoom augmentation (the GPU recipe draws zoom from
0.9-1.2) has mostly seen faces magnified, so it reads a crop best magnified by
about its training zoom's middle. And the mirror image of a face its first
pass is sure of rarely changes the label, so the second pass can be spent on
the unsure faces only. Both are chosen on PublicTest, from the network's own
passes over zoomed and mirrored images:

- the zoom whose flip-averaged accuracy is highest (on a tie, the one nearest 1);
- the lowest confidence threshold whose accuracy, mirroring only faces under
  it, is at least that of mirroring every face: the cheapest flip TTA that
  loses nothing on PublicTest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from shared.vision.classify import ExpressionClassifier, unsure_faces
from shared.vision.preprocess import zoom_inputs

if TYPE_CHECKING:
    from training.data import Split

#: Zooms tried: from none to the top of the GPU recipe's training zoom.
ZOOMS = (1.0, 1.05, 1.1, 1.15, 1.2)
#: Thresholds under which faces get the mirrored pass (None, if none loses nothing: every face).
TTA_BELOW = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
BATCH = 256

Probabilities = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ServingChoice:
    """The chosen zoom and flip threshold, and what they score on the split."""

    zoom: float
    tta_below: float | None
    #: Accuracy served this way, and of flipping every face at the same zoom.
    accuracy: float
    every_face_flipped: float
    #: Network passes per face (1: no mirrored pass; 2: every face mirrored).
    passes_per_face: float
    #: Each zoom tried: accuracy of one pass and of one pass averaged with the mirror image.
    by_zoom: dict[str, dict[str, float]]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _passes(
    classifier: ExpressionClassifier, images: npt.NDArray[np.uint8], zoom: float
) -> tuple[Probabilities, Probabilities]:
    """The network's probabilities for the zoomed images and for their mirror images."""
    plain, mirrored = [], []
    for start in range(0, len(images), BATCH):
        batch = images[start : start + BATCH][..., np.newaxis].astype(np.float32)
        batch = zoom_inputs(batch, zoom)
        plain.append(classifier.forward(batch))
        mirrored.append(classifier.forward(np.ascontiguousarray(batch[:, :, ::-1, :])))
    return np.concatenate(plain), np.concatenate(mirrored)


def _accuracy(probs: Probabilities, labels: npt.NDArray[np.integer]) -> float:
    return float((probs.argmax(axis=1) == labels).mean())


def flip_where_unsure(plain: Probabilities, mirrored: Probabilities, below: float) -> Probabilities:
    """What the classifier serves with ``tta_below``: the mean of both passes for faces
    under ``below``, the first pass for the others."""
    unsure = unsure_faces(plain, below)
    served = plain.copy()
    served[unsure] = (plain[unsure] + mirrored[unsure]) / 2.0
    return served


def choose_serving(classifier: ExpressionClassifier, split: Split) -> ServingChoice:
    by_zoom: dict[str, dict[str, float]] = {}
    best: tuple[float, float, Probabilities, Probabilities] | None = None
    for zoom in ZOOMS:
        plain, mirrored = _passes(classifier, split.images, zoom)
        flipped = _accuracy(plain + mirrored, split.labels)
        by_zoom[f"{zoom:g}"] = {
            "one_pass": round(_accuracy(plain, split.labels), 4),
            "flip": round(flipped, 4),
        }
        # ZOOMS rise from 1, so a later zoom must score strictly higher to win a tie.
        if best is None or flipped > best[1]:
            best = (zoom, flipped, plain, mirrored)
    assert best is not None
    zoom, every_face, plain, mirrored = best
    for below in TTA_BELOW:
        served = flip_where_unsure(plain, mirrored, below)
        accuracy = _accuracy(served, split.labels)
        if accuracy >= every_face:
            passes = 1.0 + float(unsure_faces(plain, below).mean())
            return ServingChoice(zoom, below, accuracy, every_face, round(passes, 4), by_zoom)
    return ServingChoice(zoom, None, every_face, every_face, 2.0, by_zoom)


def tune_artifact(model_dir: Path, split: Split, *, apply: bool = False) -> ServingChoice:
    """Choose ``model_dir``'s serving zoom and flip threshold on ``split`` (PublicTest)
    and record them in its metrics; with ``apply`` the artifact is served so, under a
    version that says how (the served probabilities change with it), and its
    PublicTest figures are those of the new serving."""
    from shared.vision.artifact import read_metadata, write_metadata

    found = choose_serving(ExpressionClassifier(model_dir), split)
    meta = read_metadata(model_dir)
    meta = replace(meta, metrics={**meta.metrics, "serving": found.as_dict()})
    if apply:
        suffix = f"-zoom{found.zoom:g}" + (
            "" if found.tta_below is None else f"-flipbelow{found.tta_below:g}"
        )
        base = meta.version.split("-zoom", 1)[0]
        meta = replace(
            meta, version=base + suffix, tta="flip", zoom=found.zoom, tta_below=found.tta_below
        )
    write_metadata(model_dir, meta)
    if apply:
        from training.evaluate import evaluate

        scored = evaluate(model_dir, split, "PublicTest").as_dict()
        write_metadata(model_dir, replace(meta, metrics={**meta.metrics, "public_test": scored}))
    return found
