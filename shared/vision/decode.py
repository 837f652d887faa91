"""Image bytes to a BGR uint8 array, or ``InvalidFrame`` with the reason.

The header is read first (``shared.image_header``, the reader ingest checks
frames with: no pixel decoded), so a decompression bomb is refused before a
single pixel buffer is allocated. The
pixels are then decoded by OpenCV, which also converts what webcams never send
but files may contain: 16-bit PNG (scaled to 8 bits), CMYK JPEG, grayscale
(expanded to BGR), alpha (dropped; frames are shown opaque) and animated WebP
(first frame). EXIF orientation is applied, as a viewer would show the photo.

``decode_reduced`` decodes a large JPEG at 1/2, 1/4 or 1/8 of its size when
the smallest face wanted still has the classifier's 48 px at that size:
libjpeg then skips most of the inverse DCT work (``cv2.IMREAD_REDUCED_*``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from shared.errors import InvalidFrame
from shared.image_header import JPEG, ImageHeader, looks_complete, read_header
from shared.vision import opencv

BGRImage = npt.NDArray[np.uint8]

#: JPEG reductions libjpeg can decode directly, largest first.
_REDUCED = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)
#: Pixels the smallest wanted face must keep after a reduced decode: the side
#: of the classifier's input, so no face is upsampled that full size would not.
FACE_PIXELS_NEEDED = 48


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """Pixels decoded (perhaps at reduced size) and the frame's own dimensions."""

    image: BGRImage
    width: int
    height: int

    @property
    def reduction(self) -> float:
        """Frame pixels per decoded pixel (1.0: full size)."""
        return float(self.width / self.image.shape[1])


def decode_image(data: bytes, max_pixels: int) -> BGRImage:
    """JPEG, PNG or WebP bytes to a BGR uint8 image (height, width, 3).

    Raises ``InvalidFrame`` with reason ``empty``, ``unsupported_format``,
    ``too_many_pixels``, ``truncated`` or ``undecodable``; more than ``max_pixels``
    (the worker's ``CLASSPULSE_MAX_FRAME_PIXELS``) are refused from the header.
    """
    return _decode_full(data, read_header(data, max_pixels))


def _decode_full(data: bytes, info: ImageHeader) -> BGRImage:
    """The pixels at full size of an image whose header ``info`` has passed."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        image = opencv.decode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise InvalidFrame(
            "undecodable", f"the {info.format.upper()} data cannot be decoded: {exc.msg}"
        ) from None
    if image is None:
        reason = "truncated" if not looks_complete(info.format, data) else "undecodable"
        raise InvalidFrame(reason, f"the {info.format.upper()} data cannot be decoded ({reason})")
    if image.size == 0:
        raise InvalidFrame("empty", "the image decodes to zero pixels")
    return image


def reduction_for(width: int, height: int, min_face_fraction: float) -> int:
    """The largest of 8, 4, 2 that keeps a face of ``min_face_fraction`` >= 48 px, else 1."""
    smallest = min_face_fraction * min(width, height)
    return next((f for f, _ in _REDUCED if smallest / f >= FACE_PIXELS_NEEDED), 1)


def decode_reduced(data: bytes, min_face_fraction: float, max_pixels: int) -> DecodedFrame:
    """Like ``decode_image``, but a JPEG is decoded at the smallest size that
    keeps its smallest wanted face (``min_face_fraction`` of the shorter side)
    at 48 px or more. Other formats and small frames decode at full size.
    """
    info = read_header(data, max_pixels)
    factor = reduction_for(info.width, info.height, min_face_fraction)
    if info.format != JPEG or factor == 1:
        full = _decode_full(data, info)  # the header is read once per frame
        return DecodedFrame(full, full.shape[1], full.shape[0])
    flag = dict(_REDUCED)[factor]
    try:
        image = opencv.decode(np.frombuffer(data, dtype=np.uint8), flag)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        # Let the full decoder give the precise reason.
        full = _decode_full(data, info)
        return DecodedFrame(full, full.shape[1], full.shape[0])
    # EXIF orientation is applied by imdecode; a rotated photo swaps the sides.
    width, height = info.width, info.height
    if (image.shape[1] > image.shape[0]) != (width > height) and width != height:
        width, height = height, width
    return DecodedFrame(image, width, height)
