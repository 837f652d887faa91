"""Cheap image checks: the type by its magic bytes, the size from its header.

No pixel is decoded here: Pillow's ``Image.open`` is lazy and reads only the
header (JPEG markers up to the frame header, PNG IHDR, WebP VP8/VP8L/VP8X),
which takes tens of microseconds. A body whose header is valid but whose data
is truncated passes here and fails in the worker, where decoding happens.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from shared.errors import InvalidFrame, UnsupportedMediaType

#: Magic bytes → media type. WebP is RIFF....WEBP, checked separately.
_MAGIC = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
}
#: Media type → the only Pillow plugin allowed to read it.
_PILLOW_FORMAT = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
MEDIA_TYPES = tuple(_PILLOW_FORMAT)


@dataclass(frozen=True, slots=True)
class ImageHeader:
    media_type: str
    width: int
    height: int


def sniff_media_type(data: bytes) -> str:
    """The media type of ``data`` by its magic bytes; ``UnsupportedMediaType`` otherwise."""
    for magic, media_type in _MAGIC.items():
        if data.startswith(magic):
            return media_type
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise UnsupportedMediaType(
        "not a JPEG, PNG or WebP image (checked by its first bytes)", field="image"
    )


def read_header(data: bytes, max_pixels: int) -> ImageHeader:
    """Type and dimensions of ``data`` without decoding pixels.

    Raises ``UnsupportedMediaType`` (415) for another type and ``InvalidFrame``
    (400) for an unreadable header or more than ``max_pixels`` pixels.
    """
    media_type = sniff_media_type(data)
    try:
        with warnings.catch_warnings():
            # Pillow warns, then refuses, at its own bomb limits; both are far
            # above any sane frame, so either means "too many pixels".
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMAT[media_type]]) as image:
                width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidFrame(
            "too_many_pixels", f"image dimensions exceed {max_pixels} pixels"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise InvalidFrame("unreadable_header", "the image header cannot be read") from None
    if width <= 0 or height <= 0:
        raise InvalidFrame("unreadable_header", "the image header has no dimensions")
    if width * height > max_pixels:
        raise InvalidFrame(
            "too_many_pixels",
            f"image is {width}x{height}; at most {max_pixels} pixels are accepted",
        )
    return ImageHeader(media_type, width, height)
