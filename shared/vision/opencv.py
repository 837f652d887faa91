"""The OpenCV calls the vision code makes, typed as they behave on uint8 images.

OpenCV's stubs type every result as ``MatLike`` (a union mypy cannot narrow to
``NDArray[uint8]``), which left a ``type: ignore`` at each call. ``np.asarray``
of an ndarray that is already uint8 returns that same array: no copy, and the
type is now checked rather than silenced.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]


def convert_color(image: Image, code: int) -> Image:
    """``cv2.cvtColor``: the same pixels in another colour layout."""
    return np.asarray(cv2.cvtColor(image, code), dtype=np.uint8)


def resize(image: Image, size: tuple[int, int], interpolation: int) -> Image:
    """``cv2.resize`` to ``size`` = (width, height)."""
    return np.asarray(cv2.resize(image, size, interpolation=interpolation), dtype=np.uint8)


def decode(buffer: Image, flags: int) -> Image | None:
    """``cv2.imdecode``: the pixels, or None when OpenCV cannot decode the bytes
    (it raises ``cv2.error`` for some malformed data; callers handle both)."""
    image = cv2.imdecode(buffer, flags)
    return None if image is None else np.asarray(image, dtype=np.uint8)
