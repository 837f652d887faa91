"""MediaPipe BlazeFace (short and full range) on ONNX Runtime.

The frame is letterboxed into the model's square input (RGB, -1..1, black
padding) as MediaPipe's ``ImageToTensorCalculator`` does; the outputs are
decoded against MediaPipe's SSD anchors with the options of
``face_detection_{short,full}_range_common.pbtxt`` (fixed anchor size, so each
anchor is a centre and the model regresses the box size directly) and merged
with weighted NMS at IoU 0.3. Each face has six keypoints; the eyes, nose tip
and mouth centre are kept (the two ear tragions are not used for alignment).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from shared.settings import DEFAULT_MIN_FACE_FRACTION, DETECTOR_MODELS_DIR
from shared.vision import opencv
from shared.vision.detect import Detection, Image, onnx_session, rows_to_detections, shrink
from shared.vision.nms import weighted_nms

#: MediaPipe clips raw scores at +-100 before the sigmoid; 80 avoids a float32
#: overflow in exp() and changes no score above 1e-34.
RAW_SCORE_LIMIT = 80.0
#: IoU above which candidate boxes are merged (MediaPipe's NonMaxSuppression).
SUPPRESSION_IOU = 0.3
#: Keypoint indices of the model output: right eye, left eye, nose tip, mouth
#: centre (then the two ear tragions, unused).
KEYPOINTS_USED = (0, 1, 2, 3)
#: Pixel value 0..255 to the model's -1..1 input, as a table: one cv2.LUT pass
#: instead of two float64 array operations, with the same float32 values.
_TO_UNIT = (np.arange(256) * (1.0 / 127.5) - 1.0).astype(np.float32)


@dataclass(frozen=True, slots=True)
class BlazeFaceSpec:
    """One BlazeFace variant: its file and MediaPipe's decoding options for it."""

    file: str
    input_size: int
    #: SSD feature-map strides, one per anchor layer.
    strides: tuple[int, ...]
    #: Two anchors per cell and layer (short range) or one (full range):
    #: MediaPipe's ``interpolated_scale_aspect_ratio`` 1.0 versus 0.0.
    interpolated_anchor: bool
    #: ``min_score_thresh`` of MediaPipe's graph for this model.
    min_score: float


SHORT_RANGE = BlazeFaceSpec("blazeface_short_range.onnx", 128, (8, 16, 16, 16), True, 0.5)
FULL_RANGE = BlazeFaceSpec("blazeface_full_range.onnx", 192, (4,), False, 0.6)


def ssd_anchor_centres(spec: BlazeFaceSpec) -> npt.NDArray[np.float32]:
    """Anchor centres (x, y) in 0..1, in the order of the model's outputs.

    MediaPipe's ``SsdAnchorsCalculator``: consecutive layers of the same
    stride share one feature map; each contributes its anchors per cell
    (two with the interpolated aspect ratio, one without).
    """
    centres: list[tuple[float, float]] = []
    layer = 0
    while layer < len(spec.strides):
        last = layer
        repeats = 0
        while last < len(spec.strides) and spec.strides[last] == spec.strides[layer]:
            repeats += 2 if spec.interpolated_anchor else 1
            last += 1
        cells = spec.input_size // spec.strides[layer]
        for y in range(cells):
            for x in range(cells):
                centres.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * repeats)
        layer = last
    return np.asarray(centres, dtype=np.float32)


class BlazeFace:
    """BlazeFace short or full range; boxes and keypoints in frame pixels."""

    def __init__(
        self,
        spec: BlazeFaceSpec = SHORT_RANGE,
        *,
        min_face_fraction: float = DEFAULT_MIN_FACE_FRACTION,
        threads: int = 1,
        models_dir: Path = DETECTOR_MODELS_DIR,
    ) -> None:
        self.spec = spec
        self.min_face_fraction = min_face_fraction
        self._session = onnx_session(models_dir / spec.file, threads)
        self._input = self._session.get_inputs()[0].name
        self._anchors = ssd_anchor_centres(spec) * spec.input_size
        outputs = [o.shape for o in self._session.get_outputs()]
        if outputs[0][1] != len(self._anchors):
            raise ValueError(f"{spec.file}: {outputs[0][1]} boxes, {len(self._anchors)} anchors")

    def detect(self, image: Image) -> list[Detection]:
        """All faces in a BGR, BGRA or gray frame, left to right."""
        height, width = image.shape[:2]
        if height == 0 or width == 0:
            return []
        size = self.spec.input_size
        tensor, scale, pad_x, pad_y = letterbox(image, size)
        regressors, logits = self._session.run(None, {self._input: tensor})
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[0, :, 0], -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        keep = np.flatnonzero(scores >= self.spec.min_score)
        if keep.size == 0:
            return []
        raw = regressors[0, keep]
        anchors = self._anchors[keep]
        centre = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2.0
        points = raw[:, 4:].reshape(len(keep), -1, 2)[:, KEYPOINTS_USED] + anchors[:, None, :]
        rows = np.concatenate(
            [centre - half, centre + half, points.reshape(len(keep), -1)], axis=1
        ).astype(np.float32)
        valid = (rows[:, 2] > rows[:, 0]) & (rows[:, 3] > rows[:, 1])
        rows, kept_scores = weighted_nms(rows[valid], scores[keep][valid], SUPPRESSION_IOU)
        # Letterbox input pixels back to frame pixels.
        offset = np.tile(np.asarray([pad_x, pad_y], dtype=np.float32), rows.shape[1] // 2)
        rows = (rows - offset) / scale
        return rows_to_detections(
            rows[:, :4],
            kept_scores,
            rows[:, 4:].reshape(len(rows), -1, 2),
            width,
            height,
            self.min_face_fraction * min(width, height),
        )


def letterbox(image: Image, size: int) -> tuple[npt.NDArray[np.float32], float, float, float]:
    """The frame fitted into size x size, centred on black.

    Returns the NHWC RGB tensor in -1..1, the scale and the left and top padding.
    """
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = shrink(image, new_w, new_h)
    rgb = to_rgb(resized)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.full((1, size, size, 3), -1.0, dtype=np.float32)
    canvas[0, pad_y : pad_y + new_h, pad_x : pad_x + new_w] = cv2.LUT(rgb, _TO_UNIT)
    return canvas, scale, float(pad_x), float(pad_y)


def to_rgb(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """RGB copy of a gray, BGR or BGRA image."""
    if image.ndim == 2:
        return opencv.convert_color(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 1:
        return opencv.convert_color(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return opencv.convert_color(image, cv2.COLOR_BGRA2RGB)
    return opencv.convert_color(image, cv2.COLOR_BGR2RGB)
