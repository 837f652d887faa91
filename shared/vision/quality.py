"""Is a face good enough to label? Too small, too dark and too blurred faces are not.

The checks run on the 48x48 model input (cheap, and independent of the frame's
resolution) plus the detected box size. The thresholds were set on the media
photos: their faces have a mean gray level of 82-143 and a Laplacian variance
of 590-2430 on the crop; a Gaussian blur of sigma = face width / 30 brings the
variance to 40-100 and a 15 % exposure brings the mean to 12-21.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import cv2
import numpy as np

from shared.vision.preprocess import Box, GrayImage


class Quality(enum.StrEnum):
    """Quality flag of a face; same values as the ``face_quality`` database enum."""

    OK = "ok"
    TOO_SMALL = "too_small"
    TOO_DARK = "too_dark"
    TOO_BLURRED = "too_blurred"


#: Faces narrower than this (frame pixels) are upsampled past recognition.
MIN_FACE_SIDE = 32
#: Mean gray level (0..255) of the crop below which the face is too dark.
MIN_MEAN_BRIGHTNESS = 40.0
#: Variance of the Laplacian of the crop below which the face is too blurred.
MIN_SHARPNESS = 150.0


@dataclass(frozen=True, slots=True)
class QualityThresholds:
    min_face_side: int = MIN_FACE_SIDE
    min_mean_brightness: float = MIN_MEAN_BRIGHTNESS
    min_sharpness: float = MIN_SHARPNESS


def brightness(crop: GrayImage) -> float:
    """Mean gray level of a crop."""
    return float(np.mean(crop))


def sharpness(crop: GrayImage) -> float:
    """Variance of the Laplacian: edges make it high, blur makes it low."""
    return float(cv2.Laplacian(crop, cv2.CV_32F).var())


def assess(box: Box, crop: GrayImage, thresholds: QualityThresholds | None = None) -> Quality:
    """The first failing check (size, then light, then focus), or ``Quality.OK``."""
    limits = thresholds or QualityThresholds()
    if min(box.w, box.h) < limits.min_face_side:
        return Quality.TOO_SMALL
    # Darkness before blur: a dark crop also has weak edges.
    if brightness(crop) < limits.min_mean_brightness:
        return Quality.TOO_DARK
    if sharpness(crop) < limits.min_sharpness:
        return Quality.TOO_BLURRED
    return Quality.OK
