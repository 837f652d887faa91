"""Face detection: one interface, the thesis's Haar cascade and CNN detectors.

Every detector returns ``Detection``s in the frame's own pixel coordinates:
a box, a score and, for the CNN detectors, eye, nose and mouth keypoints that
``shared.vision.align`` uses to level the eyes before the 48x48 crop.

* ``haar``: OpenCV's frontal-face cascade, as in the thesis (no keypoints).
* ``blazeface-short``: MediaPipe BlazeFace short range (``shared.vision.blazeface``),
  for a face close to a webcam.
* ``blazeface-full``: MediaPipe BlazeFace full range, for faces up to a few metres.
* ``retinaface``: RetinaFace-mobilenet0.25 (``shared.vision.retinaface``), the
  high-recall detector for group and gallery frames.

The weights are committed under ``models/detectors`` (see its PROVENANCE.md),
never downloaded. The Haar cascade runs on a downscaled gray copy of the frame
and its boxes are mapped back to full resolution. A Haar cascade's cost grows
with the number of windows it slides, i.e. with the pixels of the image at
each pyramid scale; at a longest side of 320 px a 640x480 frame costs a
quarter of the work, and a face of 1/6 of the frame height is still 40 px,
well above the cascade's 24 px window.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, get_args

import cv2
import numpy as np
import numpy.typing as npt

from shared.settings import DEFAULT_MIN_FACE_FRACTION, DETECTOR_MODELS_DIR, DetectorName
from shared.vision import opencv
from shared.vision.preprocess import Box, to_gray

Image = npt.NDArray[np.uint8]
Point = tuple[float, float]

HAAR_CASCADE_FILE = "haarcascade_frontalface_default.xml"
#: Smallest window the default frontal-face cascade was trained at.
HAAR_WINDOW = 24

HAAR = "haar"
BLAZEFACE_SHORT = "blazeface-short"
BLAZEFACE_FULL = "blazeface-full"
RETINAFACE = "retinaface"
#: Names accepted by ``make_detector`` (``CLASSPULSE_DETECTOR``, ``--detector``).
DETECTORS: tuple[DetectorName, ...] = get_args(DetectorName)


@dataclass(frozen=True, slots=True)
class Keypoints:
    """Face landmarks in frame pixels. "Right" and "left" are the person's own:
    in an upright, unmirrored face the right eye is on the image's left."""

    right_eye: Point
    left_eye: Point
    nose: Point
    #: Centre of the mouth (RetinaFace: the mean of its two mouth corners).
    mouth: Point


@dataclass(frozen=True, slots=True)
class Detection:
    """One face: its box (clipped to the frame), score and keypoints if the detector has them."""

    box: Box
    #: The detector's confidence 0..1; None for Haar, whose cascade gives none.
    score: float | None = None
    keypoints: Keypoints | None = None
    #: Fraction of the detector's unclipped box inside the frame (1.0: not cut).
    visible: float = 1.0


class FaceDetector(Protocol):
    """Finds faces in a frame; boxes are in the frame's own pixel coordinates."""

    def detect(self, image: Image) -> list[Detection]:
        """All faces in ``image`` (gray, BGR or BGRA), left to right."""
        ...


def make_detector(
    name: str,
    *,
    min_face_fraction: float = DEFAULT_MIN_FACE_FRACTION,
    threads: int = 1,
    models_dir: Path = DETECTOR_MODELS_DIR,
) -> FaceDetector:
    """The detector called ``name`` (one of ``DETECTORS``), its model loaded once."""
    if name == HAAR:
        return HaarDetector(HaarSettings(min_face_fraction=min_face_fraction))
    if name in (BLAZEFACE_SHORT, BLAZEFACE_FULL):
        from shared.vision.blazeface import FULL_RANGE, SHORT_RANGE, BlazeFace

        spec = SHORT_RANGE if name == BLAZEFACE_SHORT else FULL_RANGE
        return BlazeFace(
            spec, min_face_fraction=min_face_fraction, threads=threads, models_dir=models_dir
        )
    if name == RETINAFACE:
        from shared.vision.retinaface import RetinaFace

        return RetinaFace(
            min_face_fraction=min_face_fraction, threads=threads, models_dir=models_dir
        )
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")


def rows_to_detections(
    rows: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    keypoint_rows: npt.NDArray[np.float32],
    width: int,
    height: int,
    min_side: float,
) -> list[Detection]:
    """Detections from ``[x0, y0, x1, y1]`` rows and (N, 4, 2) keypoints in frame pixels.

    Faces whose shorter box side is under ``min_side`` are dropped; the boxes
    are clipped to the frame and ``visible`` says how much of each was inside.
    """
    found = []
    for row, score, kps in zip(rows, scores, keypoint_rows, strict=True):
        x0, y0, x1, y1 = (float(v) for v in row[:4])
        if min(x1 - x0, y1 - y0) < max(1.0, min_side):
            continue
        cx0, cy0 = max(0.0, x0), max(0.0, y0)
        cx1, cy1 = min(float(width), x1), min(float(height), y1)
        if cx1 - cx0 < 1 or cy1 - cy0 < 1:
            continue
        visible = (cx1 - cx0) * (cy1 - cy0) / ((x1 - x0) * (y1 - y0))
        bx, by = round(cx0), round(cy0)
        box = Box(bx, by, max(1, min(width, round(cx1)) - bx), max(1, min(height, round(cy1)) - by))
        points = [(float(x), float(y)) for x, y in kps]
        found.append(Detection(box, float(score), Keypoints(*points), round(min(1.0, visible), 4)))
    return sorted(found, key=lambda d: (d.box.x, d.box.y))


#: Whole shrink factors at which ``block_mean`` beats INTER_AREA (measured on
#: 640x480 to 1920x1080 frames: a fifth faster at 3, a sixth at 5, slower from
#: 7 on). At 2 INTER_AREA has a vectorised path of its own.
BOX_FACTORS = (3, 5)


def block_mean(image: npt.NDArray[np.uint8], factor: int) -> npt.NDArray[np.uint8]:
    """The mean of each ``factor`` x ``factor`` block, pixel for pixel as INTER_AREA gives it.

    A normalised box filter anchored at each block's corner, read at every
    ``factor``-th pixel. Both round the mean to nearest, and a sum of whole
    numbers over an odd count (9, 25 pixels) never ends in .5, so the two
    cannot round apart; even factors are refused.
    """
    if factor % 2 == 0:
        raise ValueError(f"block_mean needs an odd factor, got {factor}")
    h, w = image.shape[0] // factor, image.shape[1] // factor
    means = cv2.blur(image, (factor, factor), anchor=(0, 0))
    return np.ascontiguousarray(means[: h * factor : factor, : w * factor : factor])


def shrink(image: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    """``image`` resized to width x height, averaging pixels when it shrinks.

    Area averaging by a whole factor first (OpenCV's fast path: at a ratio
    like 640 -> 192 plain INTER_AREA costs 4x more), then bilinear for the
    rest; bilinear alone would alias a frame shrunk 5-9x (a gray
    two_people.jpg then loses both faces to BlazeFace short range).
    """
    factor = int(min(image.shape[1] / width, image.shape[0] / height))
    if factor in BOX_FACTORS:
        image = block_mean(image, factor)
    elif factor >= 2:
        # The fast path needs an exact ratio: drop the last < factor columns
        # and rows (at most 0.3 % of a 640 px frame's width at 640 -> 128).
        h, w = image.shape[0] // factor, image.shape[1] // factor
        image = opencv.resize(
            image[: h * factor, : w * factor], (w, h), interpolation=cv2.INTER_AREA
        )
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    return opencv.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def onnx_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session on ``path`` (one intra-op thread unless told)."""
    import onnxruntime as ort  # deferred: ingest never needs it

    if not path.is_file():
        raise FileNotFoundError(f"{path}: detector model missing (see models/detectors)")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True, slots=True)
class HaarSettings:
    """Tuned defaults of the Haar detector (see bench/pipeline.py for the figures)."""

    #: Longest side of the copy the cascade runs on; larger frames are shrunk.
    detect_side: int = 320
    #: Pyramid step between scales (1.1 in the thesis and ``fer``): 1.15 needs
    #: a third fewer scales and still finds every face 1.1 finds above the
    #: minimum size on the benchmark frames.
    scale_factor: float = 1.15
    #: Overlapping hits needed to accept a face. A downscaled copy and a
    #: coarser step give fewer hits per face than full resolution, so 3 here
    #: accepts about what 5 does at full size.
    min_neighbors: int = 3
    #: Smallest face reported, as a fraction of the frame's shorter side. A
    #: webcam face is a quarter of the frame or more; 1/10 also keeps a
    #: student sitting back (or a group shot like video_01.mp4) and skips the
    #: smallest, most expensive scales. 0.15 detects about 1.6x faster but
    #: finds faces in 12 instead of 90 frames of video_01.mp4. The copy's
    #: 24 px window is a floor: on a 16:9 frame (a 320x180 copy) the smallest
    #: face found is 0.13 of the height, whatever a lower setting says.
    min_face_fraction: float = DEFAULT_MIN_FACE_FRACTION


@lru_cache(maxsize=4)
def load_cascade(path: str) -> cv2.CascadeClassifier:
    """Load a cascade file once per process."""
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"{path}: cannot load the Haar cascade")
    return cascade


class HaarDetector:
    """OpenCV's frontal-face Haar cascade on a downscaled copy of the frame."""

    def __init__(self, settings: HaarSettings | None = None) -> None:
        self.settings = settings or HaarSettings()
        self._cascade = load_cascade(cv2.data.haarcascades + HAAR_CASCADE_FILE)  # type: ignore[attr-defined]

    def detect(self, image: Image) -> list[Detection]:
        """All frontal faces in ``image``, left to right, in full-resolution pixels."""
        gray = to_gray(image)
        height, width = gray.shape[:2]
        if height == 0 or width == 0:
            return []
        scale = min(1.0, self.settings.detect_side / max(height, width))
        small = gray
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = opencv.resize(gray, size, interpolation=cv2.INTER_AREA)
        min_side = max(HAAR_WINDOW, int(min(small.shape[:2]) * self.settings.min_face_fraction))
        if min(small.shape[:2]) < min_side:
            return []
        found = self._cascade.detectMultiScale(
            small,
            scaleFactor=self.settings.scale_factor,
            minNeighbors=self.settings.min_neighbors,
            minSize=(min_side, min_side),
        )
        boxes = [_to_full(tuple(int(v) for v in row), scale, width, height) for row in found]
        return [Detection(box) for box in sorted(boxes, key=lambda b: (b.x, b.y))]


def _to_full(row: tuple[int, ...], scale: float, width: int, height: int) -> Box:
    """Map a box of the downscaled copy back to the full frame, clipped to it."""
    x, y, w, h = (v / scale for v in row)
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    return Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0))
