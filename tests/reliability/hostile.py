"""Hostile and unusual images, built from real photos, with what must become of each.

``rejected`` ones are refused by ingest with a status and error code; the
others pass ingest's header check and end in the worker as ``done`` or
``failed`` with a reason (see ``shared.vision.decode``).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from tests.conftest import MEDIA


@dataclass(frozen=True)
class Hostile:
    data: bytes
    content_type: str
    #: ("rejected", status, code) | ("failed", reason) | ("done",)
    outcome: tuple[object, ...]


def _save(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + payload))
    return struct.pack(">I", len(payload)) + kind + payload + crc


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` over a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


def corpus() -> dict[str, Hostile]:
    # The size a classroom client sends.
    photo = Image.open(MEDIA / "obama.jpg").convert("RGB").resize((640, 480))
    jpeg = _save(photo, "JPEG", quality=90)
    # 16 bits per channel, colour: PIL cannot write it, OpenCV can.
    encoded, sixteen = cv2.imencode(".png", np.asarray(photo)[:, :, ::-1].astype(np.uint16) * 257)
    assert encoded
    frames = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    # Real zlib bombs: black pixels, 48 MiB decoded from some 50 kB. One at the
    # pixel limit (ingest lets it through to the worker), one a pixel row over.
    bomb = _save(Image.new("RGB", (4096, 4096)), "PNG")
    over = _save(Image.new("RGB", (4097, 4097)), "PNG")
    return {
        "zero-length": Hostile(b"", "image/jpeg", ("rejected", 422, "validation_error")),
        "wrong magic": Hostile(
            b"GIF89a" + jpeg[6:], "image/jpeg", ("rejected", 415, "unsupported_media_type")
        ),
        "huge dimensions": Hostile(
            png_claiming(100_000, 100_000), "image/png", ("rejected", 400, "invalid_image")
        ),
        "bomb over the pixel limit": Hostile(over, "image/png", ("rejected", 400, "invalid_image")),
        "truncated": Hostile(jpeg[: len(jpeg) // 3], "image/jpeg", ("failed", "truncated")),
        "bomb within the pixel limit": Hostile(bomb, "image/png", ("done",)),
        "CMYK JPEG": Hostile(
            _save(photo.convert("CMYK"), "JPEG", quality=90), "image/jpeg", ("done",)
        ),
        "16-bit PNG": Hostile(sixteen.tobytes(), "image/png", ("done",)),
        "animated WebP": Hostile(
            _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], quality=80),
            "image/webp",
            ("done",),
        ),
    }
