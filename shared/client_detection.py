"""What the classroom page needs to detect and align faces as the workers do.

The page runs the workers' BlazeFace weights (``models/detectors``) and
decodes them with the same anchors, thresholds and weighted NMS, then aligns
each face onto the same FER2013 keypoints. Ingest cannot import the vision
code (no OpenCV there), so the numbers the page is given live here, free of
imports; tests/vision/test_client_detection.py holds them equal to
``shared.vision.blazeface`` and ``shared.vision.align``.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.face_crops import CROP_SIDE, MAX_FACES, ClientDetector


@dataclass(frozen=True, slots=True)
class PageDetector:
    """One BlazeFace variant as the page runs it (``shared.vision.blazeface.BlazeFaceSpec``)."""

    name: ClientDetector
    file: str
    input_size: int
    strides: tuple[int, ...]
    interpolated_anchor: bool
    min_score: float


PAGE_DETECTORS: dict[ClientDetector, PageDetector] = {
    "blazeface-full": PageDetector(
        "blazeface-full", "blazeface_full_range.onnx", 192, (4,), False, 0.6
    ),
    "blazeface-short": PageDetector(
        "blazeface-short", "blazeface_short_range.onnx", 128, (8, 16, 16, 16), True, 0.5
    ),
}
#: Model files the ingest API serves to the page.
PAGE_MODEL_FILES = frozenset(d.file for d in PAGE_DETECTORS.values())
#: Weighted NMS overlap and the raw score clip (``shared.vision.blazeface``).
SUPPRESSION_IOU = 0.3
RAW_SCORE_LIMIT = 80.0
#: ``shared.vision.align.FER_KEYPOINTS``: right eye, left eye, nose, mouth in 48 px.
FER_KEYPOINTS = ((15.35, 18.9), (32.65, 18.9), (24.0, 29.0), (24.0, 37.0))
#: Side of the model input the crops are made for (``shared.vision.preprocess``).
MODEL_INPUT_SIDE = 48


def page_detector(server_detector: str) -> PageDetector:
    """The page's detector: the workers' BlazeFace, or full range when they run another one.

    Full range is the workers' default and finds faces up to a few metres; the
    Haar cascade and RetinaFace have no counterpart in the page.
    """
    if server_detector == "blazeface-short":
        return PAGE_DETECTORS["blazeface-short"]
    return PAGE_DETECTORS["blazeface-full"]


__all__ = ["CROP_SIDE", "MAX_FACES", "PAGE_DETECTORS", "PageDetector", "page_detector"]
