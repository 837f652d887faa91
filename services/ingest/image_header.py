"""Ingest's image check: the shared header reader (``shared.image_header``), with a
type ingest does not take answered as 415 rather than as an invalid image."""

from __future__ import annotations

from shared.errors import InvalidFrame, UnsupportedMediaType
from shared.image_header import MEDIA_TYPES as _BY_FORMAT
from shared.image_header import ImageHeader
from shared.image_header import read_header as _read_header

#: Media types ingest accepts as frames.
MEDIA_TYPES = tuple(_BY_FORMAT.values())

__all__ = ["MEDIA_TYPES", "ImageHeader", "read_header"]


def read_header(data: bytes, max_pixels: int) -> ImageHeader:
    """Type and dimensions of ``data`` without decoding pixels.

    Raises ``UnsupportedMediaType`` (415) for another type and ``InvalidFrame``
    (400) for an unreadable header or more than ``max_pixels`` pixels.
    """
    try:
        return _read_header(data, max_pixels)
    except InvalidFrame as exc:
        if exc.reason == "unsupported_format":
            raise UnsupportedMediaType(
                "not a JPEG, PNG or WebP image (checked by its first bytes)", field="image"
            ) from None
        raise
