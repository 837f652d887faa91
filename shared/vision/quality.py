"""Is a face good enough to label? Too small, cut off, turned away, too dark or
too blurred faces are not.

Size, framing and pose come from the detector (box, keypoints: see
``shared.vision.align.Pose``); faces from Haar, which has no keypoints, skip
the framing and pose checks. The other checks run on the 48x48 model input
(cheap, and independent of the frame's resolution) plus the detected box size.
The light and focus thresholds were set on the media photos: their faces have
a mean gray level of 82-143 and a Laplacian variance of 590-2430 on the crop;
a Gaussian blur of sigma = face width / 30 brings the variance to 40-100 and a
15 % exposure brings the mean to 12-21.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import cv2
import numpy as np

from shared.vision.align import Pose
from shared.vision.preprocess import Box, GrayImage


class Quality(enum.StrEnum):
    """Quality flag of a face; same values as the ``face_quality`` database enum."""

    OK = "ok"
    TOO_SMALL = "too_small"
    TOO_DARK = "too_dark"
    TOO_BLURRED = "too_blurred"
    #: Head turned so far that one side of the face is hidden (profile).
    TURNED_AWAY = "turned_away"
    #: A large part of the face lies outside the frame.
    CUT_OFF = "cut_off"


#: Faces narrower than this (frame pixels) are upsampled past recognition.
MIN_FACE_SIDE = 32
#: Mean gray level (0..255) of the crop below which the face is too dark.
MIN_MEAN_BRIGHTNESS = 40.0
#: Variance of the Laplacian of the crop below which the face is too blurred.
MIN_SHARPNESS = 150.0
#: Largest |yaw| (nose offset from the eyes' midpoint, in eye distances) and
#: smallest eye-distance/eyes-to-mouth ratio of a face still labelled. On the
#: frontal media photos the yaw is at most 0.2 and the ratio at least 0.86; on
#: the profile faces of short_hamilton_clip.mp4 the yaw reaches 0.75 or more,
#: or the ratio falls to 0.46 or less. The limits sit between (about 45 degrees).
#: In the degrees of ``shared.vision.pose`` (yaw ratio = NOSE_DEPTH x tan(yaw)),
#: 0.45 is 45 degrees for a level head. The "facing the screen" call stops at
#: 25: a face turned 25-45 degrees keeps its expression label (FER2013 holds
#: such three-quarter faces) but is not counted as facing.
MAX_YAW = 0.45
MIN_EYE_MOUTH_RATIO = 0.55
#: Smallest fraction of the aligned crop (and of the detector's box) inside the
#: frame: below it, replicated border pixels would stand in for the face.
MIN_INSIDE = 0.75


@dataclass(frozen=True, slots=True)
class QualityThresholds:
    min_face_side: int = MIN_FACE_SIDE
    min_mean_brightness: float = MIN_MEAN_BRIGHTNESS
    min_sharpness: float = MIN_SHARPNESS
    max_yaw: float = MAX_YAW
    min_eye_mouth_ratio: float = MIN_EYE_MOUTH_RATIO
    min_inside: float = MIN_INSIDE


def brightness(crop: GrayImage) -> float:
    """Mean gray level of a crop."""
    return float(np.mean(crop))


def sharpness(crop: GrayImage) -> float:
    """Variance of the Laplacian: edges make it high, blur makes it low."""
    return float(cv2.Laplacian(crop, cv2.CV_32F).var())


def assess(
    box: Box,
    crop: GrayImage,
    thresholds: QualityThresholds | None = None,
    pose: Pose | None = None,
    visible: float = 1.0,
) -> Quality:
    """The first failing check (size, framing, pose, light, focus), or ``Quality.OK``.

    ``pose`` comes from the keypoints (None for Haar faces); ``visible`` is the
    fraction of the detector's own box inside the frame.
    """
    limits = thresholds or QualityThresholds()
    if min(box.w, box.h) < limits.min_face_side:
        return Quality.TOO_SMALL
    inside = min(visible, pose.inside if pose is not None else 1.0)
    if inside < limits.min_inside:
        return Quality.CUT_OFF
    if pose is not None and (
        abs(pose.yaw) > limits.max_yaw or pose.eye_mouth_ratio < limits.min_eye_mouth_ratio
    ):
        return Quality.TURNED_AWAY
    # Darkness before blur: a dark crop also has weak edges.
    if brightness(crop) < limits.min_mean_brightness:
        return Quality.TOO_DARK
    if sharpness(crop) < limits.min_sharpness:
        return Quality.TOO_BLURRED
    return Quality.OK
