"""Face crops a browser aligned itself (``shared.face_crops``) to the pipeline's inputs.

The page warps each face as ``shared.vision.align.aligned_crop`` does up to
its last step, the ``CROP_SIDE`` (96 px) supersampled crop; here that step is
done as the server does it (area averaging to 48 px), and each face becomes a
``Detection`` again, with its box clipped and its visible fraction measured as
for the server's own detections, so that the quality gate, the classifier and
the head pose see exactly what they would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from shared.errors import InvalidFrame
from shared.face_crops import CROP_SIDE, FaceCrops
from shared.vision import opencv
from shared.vision.detect import Detection, rows_to_detections
from shared.vision.preprocess import INPUT_SIZE, GrayImage


@dataclass(frozen=True, slots=True)
class AlignedFace:
    """A face found and aligned by the client: its detection and 48x48 model input."""

    detection: Detection
    crop: GrayImage


def decode_strip(image: bytes, faces: int) -> GrayImage:
    """The crops image as gray pixels, checked to hold ``faces`` crops; else ``InvalidFrame``."""
    buffer = np.frombuffer(image, dtype=np.uint8)
    try:
        strip = opencv.decode(buffer, cv2.IMREAD_GRAYSCALE)
    except cv2.error:
        strip = None
    if strip is None:
        raise InvalidFrame("undecodable", "the face crops cannot be decoded")
    if strip.shape != (CROP_SIDE * faces, CROP_SIDE):
        raise InvalidFrame(
            "bad_face_crops",
            f"crops are {strip.shape[1]}x{strip.shape[0]}, expected "
            f"{CROP_SIDE}x{CROP_SIDE * faces} for {faces} faces",
        )
    return strip


def aligned_faces(meta: FaceCrops, image: bytes, min_face_fraction: float) -> list[AlignedFace]:
    """The faces of a face-crops frame, left to right, as the server's detector gives them.

    Faces under the server's smallest face size are dropped as the detector
    drops them (the page applies the same limit; this keeps a client honest).
    """
    if not meta.faces:
        return []
    strip = decode_strip(image, len(meta.faces))
    width, height = meta.frame_width, meta.frame_height
    min_side = min_face_fraction * min(width, height)
    found: list[AlignedFace] = []
    for index, face in enumerate(meta.faces):
        detections = rows_to_detections(
            np.asarray([face.box], dtype=np.float32),
            np.asarray([face.score], dtype=np.float32),
            np.asarray([face.keypoints], dtype=np.float32),
            width,
            height,
            min_side,
        )
        if not detections:
            continue
        tile = strip[index * CROP_SIDE : (index + 1) * CROP_SIDE]
        small = opencv.resize(tile, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
        found.append(AlignedFace(detections[0], np.ascontiguousarray(small)))
    return sorted(found, key=lambda f: (f.detection.box.x, f.detection.box.y))
