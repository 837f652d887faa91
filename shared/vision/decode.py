"""Image bytes to a BGR uint8 array, or ``InvalidFrame`` with the reason.

The header is read first (Pillow's ``Image.open`` is lazy: it parses the JPEG
frame header, PNG IHDR or WebP VP8/VP8L/VP8X chunk and decodes no pixel), so a
decompression bomb is refused before a single pixel buffer is allocated. The
pixels are then decoded by OpenCV, which also converts what webcams never send
but files may contain: 16-bit PNG (scaled to 8 bits), CMYK JPEG, grayscale
(expanded to BGR), alpha (dropped; frames are shown opaque) and animated WebP
(first frame). EXIF orientation is applied, as a viewer would show the photo.

``decode_reduced`` decodes a large JPEG at 1/2, 1/4 or 1/8 of its size when
the smallest face wanted still has the classifier's 48 px at that size:
libjpeg then skips most of the inverse DCT work (``cv2.IMREAD_REDUCED_*``).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from shared.errors import InvalidFrame
from shared.settings import frame_settings

BGRImage = npt.NDArray[np.uint8]

JPEG = "jpeg"
PNG = "png"
WEBP = "webp"
_PILLOW_FORMAT = {JPEG: "JPEG", PNG: "PNG", WEBP: "WEBP"}
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_END = b"\xff\xd9"
_PNG_END = b"IEND\xaeB`\x82"
#: Bytes at the end of a JPEG searched for its end marker; some encoders pad
#: after it, and inside entropy-coded data 0xFFD9 cannot occur.
_JPEG_TAIL = 1024


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


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What an image header says: the format and the dimensions."""

    format: str
    width: int
    height: int


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


def read_info(data: bytes, max_pixels: int) -> ImageInfo:
    """Format and dimensions from the header alone; refuses more than ``max_pixels``."""
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
        reason = "truncated" if not _looks_complete(fmt, data) else "undecodable"
        raise InvalidFrame(reason, f"the {fmt.upper()} header cannot be read ({reason})") from None
    if width <= 0 or height <= 0:
        raise InvalidFrame("empty", f"the image is {width}x{height} pixels")
    if width * height > max_pixels:
        raise InvalidFrame(
            "too_many_pixels",
            f"the image is {width}x{height}; at most {max_pixels} pixels are accepted",
        )
    return ImageInfo(fmt, width, height)


def _looks_complete(fmt: str, data: bytes) -> bool:
    """Whether the file's end marker is there (tells truncated from corrupt)."""
    if fmt == JPEG:
        return data.rfind(_JPEG_END, max(0, len(data) - _JPEG_TAIL)) >= 0
    if fmt == PNG:
        return data.rstrip(b"\x00").endswith(_PNG_END)
    # WebP: the RIFF header states the size of everything after its first 8 bytes.
    riff_size = int.from_bytes(data[4:8], "little") if len(data) >= 8 else 0
    return len(data) >= riff_size + 8


def decode_image(data: bytes, max_pixels: int | None = None) -> BGRImage:
    """JPEG, PNG or WebP bytes to a BGR uint8 image (height, width, 3).

    Raises ``InvalidFrame`` with reason ``empty``, ``unsupported_format``,
    ``too_many_pixels``, ``truncated`` or ``undecodable``. ``max_pixels``
    defaults to the ``CLASSPULSE_MAX_FRAME_PIXELS`` setting.
    """
    if max_pixels is None:
        max_pixels = frame_settings().max_frame_pixels
    return _decode_full(data, read_info(data, max_pixels))


def _decode_full(data: bytes, info: ImageInfo) -> BGRImage:
    """The pixels at full size of an image whose header ``info`` has passed."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise InvalidFrame(
            "undecodable", f"the {info.format.upper()} data cannot be decoded: {exc.msg}"
        ) from None
    if image is None:
        reason = "truncated" if not _looks_complete(info.format, data) else "undecodable"
        raise InvalidFrame(reason, f"the {info.format.upper()} data cannot be decoded ({reason})")
    if image.size == 0:
        raise InvalidFrame("empty", "the image decodes to zero pixels")
    return image  # type: ignore[return-value]


def reduction_for(width: int, height: int, min_face_fraction: float) -> int:
    """The largest of 8, 4, 2 that keeps a face of ``min_face_fraction`` >= 48 px, else 1."""
    smallest = min_face_fraction * min(width, height)
    return next((f for f, _ in _REDUCED if smallest / f >= FACE_PIXELS_NEEDED), 1)


def decode_reduced(
    data: bytes, min_face_fraction: float, max_pixels: int | None = None
) -> DecodedFrame:
    """Like ``decode_image``, but a JPEG is decoded at the smallest size that
    keeps its smallest wanted face (``min_face_fraction`` of the shorter side)
    at 48 px or more. Other formats and small frames decode at full size.
    """
    if max_pixels is None:
        max_pixels = frame_settings().max_frame_pixels
    info = read_info(data, max_pixels)
    factor = reduction_for(info.width, info.height, min_face_fraction)
    if info.format != JPEG or factor == 1:
        full = _decode_full(data, info)  # the header is read once per frame
        return DecodedFrame(full, full.shape[1], full.shape[0])
    flag = dict(_REDUCED)[factor]
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
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
    return DecodedFrame(image, width, height)  # type: ignore[arg-type]
