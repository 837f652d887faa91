"""Face-crops bodies made in Python as the classroom page makes them (tests of ingest and worker).

Each face is warped at the server's supersampled size (96 px) onto the FER2013
keypoints (``shared.vision.align.alignment_matrix``), the crops stacked in one
gray PNG, the metadata packed before it (``shared.face_crops``).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from shared import face_crops
from shared.vision.align import alignment_matrix
from shared.vision.detect import Detection

SIDE = face_crops.CROP_SIDE


def crop_of(image: np.ndarray[Any, Any], detection: Detection) -> np.ndarray[Any, Any]:
    assert detection.keypoints is not None
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    matrix = alignment_matrix(detection.keypoints, SIDE)
    return cv2.warpAffine(gray, matrix, (SIDE, SIDE), flags=cv2.INTER_AREA)


def face_of(detection: Detection) -> face_crops.CropFace:
    kp = detection.keypoints
    assert kp is not None
    box = detection.box
    return face_crops.CropFace(
        score=detection.score or 0.0,
        box=(box.x, box.y, box.x + box.w, box.y + box.h),
        keypoints=(kp.right_eye, kp.left_eye, kp.nose, kp.mouth),
    )


def body(
    image: np.ndarray[Any, Any], detections: list[Detection], *, strip: bytes | None = None
) -> bytes:
    """The packed body of ``detections`` in ``image`` (``strip`` replaces the crops image)."""
    height, width = image.shape[:2]
    meta = face_crops.FaceCrops(
        frame_width=width,
        frame_height=height,
        detector="blazeface-full",
        faces=[face_of(d) for d in detections],
    )
    if strip is None and detections:
        crops = np.vstack([crop_of(image, d) for d in detections])
        strip = cv2.imencode(".png", crops)[1].tobytes()
    return face_crops.pack(meta, strip or b"")


def no_face_body(width: int = 640, height: int = 480) -> bytes:
    meta = face_crops.FaceCrops(frame_width=width, frame_height=height, detector="blazeface-full")
    return face_crops.pack(meta, b"")
