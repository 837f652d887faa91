"""Face detection: an interface and OpenCV's Haar cascade, as in the thesis.

Detection runs on a downscaled gray copy of the frame and the boxes are mapped
back to full resolution. A Haar cascade's cost grows with the number of
windows it slides, i.e. with the pixels of the image at each pyramid scale;
at a longest side of 320 px a 640x480 frame costs a quarter of the work,
and a face of 1/6 of the frame height is still 40 px, well above the
cascade's 24 px window.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from shared.settings import DEFAULT_MIN_FACE_FRACTION
from shared.vision.preprocess import Box, to_gray

Image = npt.NDArray[np.uint8]

HAAR_CASCADE_FILE = "haarcascade_frontalface_default.xml"
#: Smallest window the default frontal-face cascade was trained at.
HAAR_WINDOW = 24


class FaceDetector(Protocol):
    """Finds faces in a frame; boxes are in the frame's own pixel coordinates."""

    def detect(self, image: Image) -> list[Box]:
        """All faces in ``image`` (gray, BGR or BGRA), left to right."""
        ...


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

    def detect(self, image: Image) -> list[Box]:
        """All frontal faces in ``image``, left to right, in full-resolution pixels."""
        gray = to_gray(image)
        height, width = gray.shape[:2]
        if height == 0 or width == 0:
            return []
        scale = min(1.0, self.settings.detect_side / max(height, width))
        small = gray
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)  # type: ignore[assignment]
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
        return sorted(boxes, key=lambda b: (b.x, b.y))


def _to_full(row: tuple[int, ...], scale: float, width: int, height: int) -> Box:
    """Map a box of the downscaled copy back to the full frame, clipped to it."""
    x, y, w, h = (v / scale for v in row)
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    return Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0))
