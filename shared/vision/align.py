"""Eye-level alignment and FER2013 framing of a detected face, from its keypoints.

FER2013's 48x48 faces were cut around Haar boxes: upright, the eyes a little
above the middle. ``FER_KEYPOINTS`` says where exactly, measured rather than
guessed: the median keypoints of RetinaFace, BlazeFace short and full range on
the first 1,500 PublicTest faces (each upscaled x4 and padded so the detectors
see a whole face); the three detectors agree within 0.5 px. A detected face is
rotated so that its eyes are level, then scaled and shifted (least squares
over eyes, nose and mouth, with the rotation fixed) onto those points, so the
classifier sees faces framed as the faces it was trained on.

``Pose`` measures what the quality gate needs from the same keypoints: how far
the face is turned, and how much of the aligned crop lies outside the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from shared.vision import opencv
from shared.vision.detect import Keypoints
from shared.vision.preprocess import INPUT_SIZE, GrayImage, to_gray

#: Right eye, left eye, nose tip, mouth centre of a FER2013 face, in 48x48 pixels
#: (medians over PublicTest: eyes 17.3 px apart on the row y = 18.9, the nose
#: 10 px and the mouth 18 px below them; made symmetric about x = 24).
FER_KEYPOINTS = np.asarray(
    [[15.35, 18.9], [32.65, 18.9], [24.0, 29.0], [24.0, 37.0]], dtype=np.float64
)
#: The crop is warped at this multiple of 48 px and then area-averaged down,
#: so a large face is not sampled with gaps (bilinear warping alone aliases).
SUPERSAMPLE = 2

Matrix = npt.NDArray[np.float64]


def _points(kp: Keypoints) -> Matrix:
    return np.asarray([kp.right_eye, kp.left_eye, kp.nose, kp.mouth], dtype=np.float64)


def eye_angle(kp: Keypoints) -> float:
    """Roll of the face in radians: the angle of the line from right eye to left eye."""
    (rx, ry), (lx, ly) = kp.right_eye, kp.left_eye
    return math.atan2(ly - ry, lx - rx)


def alignment_matrix(kp: Keypoints, size: int = INPUT_SIZE) -> Matrix:
    """2x3 affine map from frame pixels to a ``size`` x ``size`` FER2013-framed crop."""
    src = _points(kp)
    dst = FER_KEYPOINTS * (size / INPUT_SIZE)
    angle = -eye_angle(kp)
    rotation = np.asarray([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    turned = src @ rotation.T
    src_c, dst_c = turned - turned.mean(axis=0), dst - dst.mean(axis=0)
    norm = float((src_c**2).sum())
    scale = float((src_c * dst_c).sum()) / norm if norm > 0 else 1.0
    if scale <= 0:  # degenerate keypoints: fall back to the eye distance
        scale = (dst[1, 0] - dst[0, 0]) / max(1e-6, float(np.linalg.norm(src[1] - src[0])))
    linear = scale * rotation
    shift = dst.mean(axis=0) - turned.mean(axis=0) * scale
    return np.hstack([linear, shift[:, None]])


def crop_corners(matrix: Matrix, size: int = INPUT_SIZE) -> Matrix:
    """The crop's four corners in frame pixels (the inverse of ``matrix``)."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.asarray([[0, 0, 1], [size, 0, 1], [size, size, 1], [0, size, 1]], np.float64)
    return np.asarray(corners @ inverse.T, dtype=np.float64)


def aligned_crop(image: npt.NDArray[np.uint8], kp: Keypoints) -> GrayImage:
    """The 48x48 model input of a face of a gray, BGR or BGRA frame: eyes level,
    framed as FER2013 faces are.

    Only the region around the face is turned gray and resampled. Parts of the
    crop outside the frame repeat the frame's edge (the quality gate flags
    faces cut off).
    """
    big = INPUT_SIZE * SUPERSAMPLE
    matrix = alignment_matrix(kp, big)
    corners = crop_corners(matrix, big)
    height, width = image.shape[:2]
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, width - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, height - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 2, x0 + 1, width))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 2, y0 + 1, height))
    region = to_gray(image[y0:y1, x0:x1])
    # Shrink a large face first (area averaging) to about the warp's scale.
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    shrink = min(1.0, scale)
    if shrink < 1.0:
        size = (max(1, round(region.shape[1] * shrink)), max(1, round(region.shape[0] * shrink)))
        region = opencv.resize(region, size, interpolation=cv2.INTER_AREA)
    sx, sy = region.shape[1] / (x1 - x0), region.shape[0] / (y1 - y0)
    # frame -> region: subtract the origin and scale; so region -> crop is
    # matrix composed with the inverse of that.
    to_region = np.asarray([[sx, 0, -x0 * sx], [0, sy, -y0 * sy], [0, 0, 1]], np.float64)
    warp = np.vstack([matrix, [0, 0, 1]]) @ np.linalg.inv(to_region)
    crop = cv2.warpAffine(
        region, warp[:2], (big, big), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    small = cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small)


@dataclass(frozen=True, slots=True)
class Pose:
    """What the keypoints say about a face's usability."""

    #: Nose offset from the eyes' midpoint along the eye line, in eye
    #: distances: about 0 frontal, growing as the head turns left or right.
    yaw: float
    #: Eye distance over the eyes-to-mouth distance: about 0.95 frontal,
    #: shrinking as the head turns (the eyes close up, the mouth does not).
    eye_mouth_ratio: float
    #: Fraction of the aligned crop's area inside the frame.
    inside: float


def pose(kp: Keypoints, width: int, height: int) -> Pose:
    """Yaw, eye/mouth ratio and how much of the crop is inside a width x height frame."""
    re, le, nose, mouth = _points(kp)
    axis = le - re
    iod = float(np.linalg.norm(axis))
    mid = (re + le) / 2
    eye_mouth = float(np.linalg.norm(mouth - mid))
    yaw = float(np.dot(nose - mid, axis)) / (iod * iod) if iod > 0 else math.inf
    ratio = iod / eye_mouth if eye_mouth > 0 else 0.0
    corners = crop_corners(alignment_matrix(kp)).astype(np.float32)
    area = abs(cv2.contourArea(corners))
    frame = np.asarray([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    inter, _ = cv2.intersectConvexConvex(corners, frame)
    inside = float(inter) / area if area > 0 else 0.0
    return Pose(yaw, ratio, min(1.0, inside))
