"""An image's format and size from its first bytes and header, without a pixel decoded.

One reader for ingest's validation (a frame is refused before it is queued)
and the worker's decoder (a decompression bomb is refused before a pixel
buffer exists). Pillow's ``Image.open`` is lazy: it parses the JPEG frame
header, PNG IHDR or WebP VP8/VP8L/VP8X chunk, in tens of microseconds, and
needs no OpenCV. A header that is valid over truncated data passes here and
fails where the pixels are decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from shared.errors import InvalidFrame

JPEG = "jpeg"
PNG = "png"
WEBP = "webp"
#: Format → its media type on the wire.
MEDIA_TYPES = {JPEG: "image/jpeg", PNG: "image/png", WEBP: "image/webp"}
#: Format → the only Pillow plugin allowed to read it.
_PILLOW_FORMAT = {JPEG: "JPEG", PNG: "PNG", WEBP: "WEBP"}
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_END = b"\xff\xd9"
_PNG_END = b"IEND\xaeB`\x82"
#: Bytes at the end of a JPEG searched for its end marker; some encoders pad
#: after it, and inside entropy-coded data 0xFFD9 cannot occur.
_JPEG_TAIL = 1024


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What an image header says: the format and the dimensions."""

    format: str
    width: int
    height: int

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def sniff_format(data: bytes) -> str:
    """``jpeg``, ``png`` or ``webp`` by the magic bytes; ``InvalidFrame`` otherwise."""
    if not data:
        raise InvalidFrame("empty", "the image is empty (zero bytes)")
    if data.startswith(_JPEG_MAGIC):
        return JPEG
    if data.startswith(_PNG_MAGIC):
        return PNG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    raise InvalidFrame("unsupported_format", "not a JPEG, PNG or WebP image")


def read_header(data: bytes, max_pixels: int) -> ImageHeader:
    """Format and dimensions from the header alone; refuses more than ``max_pixels``.

    ``InvalidFrame`` reasons: ``empty``, ``unsupported_format``, ``truncated``
    or ``undecodable`` (an unreadable header, by whether the file's end marker
    is there) and ``too_many_pixels``.
    """
    fmt = sniff_format(data)
    try:
        with warnings.catch_warnings():
            # Pillow warns at its own bomb limit and raises at twice it; both
            # are far above any frame, so either means "too many pixels".
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMAT[fmt]]) as image:
                width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidFrame(
            "too_many_pixels", f"the image has more than {max_pixels} pixels"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError):
        reason = "truncated" if not looks_complete(fmt, data) else "undecodable"
        raise InvalidFrame(reason, f"the {fmt.upper()} header cannot be read ({reason})") from None
    if width <= 0 or height <= 0:
        raise InvalidFrame("empty", f"the image is {width}x{height} pixels")
    if width * height > max_pixels:
        raise InvalidFrame(
            "too_many_pixels",
            f"the image is {width}x{height}; at most {max_pixels} pixels are accepted",
        )
    return ImageHeader(fmt, width, height)


def looks_complete(fmt: str, data: bytes) -> bool:
    """Whether the file's end marker is there (tells truncated from corrupt)."""
    if fmt == JPEG:
        return data.rfind(_JPEG_END, max(0, len(data) - _JPEG_TAIL)) >= 0
    if fmt == PNG:
        return data.rstrip(b"\x00").endswith(_PNG_END)
    # WebP: the RIFF header states the size of everything after its first 8 bytes.
    riff_size = int.from_bytes(data[4:8], "little") if len(data) >= 8 else 0
    return len(data) >= riff_size + 8
