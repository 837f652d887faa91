"""Ingest's checks of a face-crops body (``shared.face_crops``), as cheap as a frame's.

The body is the packed form itself (magic, JSON length, JSON metadata, crop
image), the same bytes over HTTP, in a batch part or as a WebSocket message.
Its metadata is validated, its image is checked by magic bytes and header
only (type, and exactly ``CROP_SIDE`` x ``CROP_SIDE`` per face), and it is
packed again from the validated metadata for the worker.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pydantic import ValidationError

from services.ingest.image_header import read_header
from shared import face_crops
from shared.errors import InvalidFrame, InvalidValue, PayloadTooLarge, UnsupportedMediaType

#: Content-Type of a face-crops body over HTTP (the bytes decide: their magic).
MEDIA_TYPE = f"application/vnd.classpulse.face-crops.v{face_crops.VERSION}"
#: Largest JSON metadata: four faces take about 600 bytes.
MAX_META_BYTES = 4096
_HEAD = len(face_crops.MAGIC) + 4


@dataclass(frozen=True, slots=True)
class CheckedBody:
    """What ingest stores for a body (frame or face crops) and records on its frame row."""

    stored: bytes
    media_type: str
    width: int
    height: int


def check_face_crops(data: bytes, declared_type: str | None, max_pixels: int) -> CheckedBody:
    """The validated body ready for Redis, or the 4xx that says what is wrong."""
    if declared_type not in (None, "application/octet-stream", MEDIA_TYPE):
        raise UnsupportedMediaType(
            f"Content-Type says {declared_type} but the body is face crops ({MEDIA_TYPE})",
            field="image",
        )
    if len(data) < _HEAD:
        raise InvalidValue("the face-crops body ends before its metadata", field="image")
    (length,) = struct.unpack_from(">I", data, len(face_crops.MAGIC))
    if length > MAX_META_BYTES or _HEAD + length > len(data):
        raise InvalidValue(
            f"face-crops metadata of {length} bytes (at most {MAX_META_BYTES}, within the body)",
            field="image",
        )
    try:
        meta = face_crops.FaceCrops.model_validate_json(data[_HEAD : _HEAD + length])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidValue(f"face-crops metadata: {where}: {first['msg']}", field="image") from None
    image = data[_HEAD + length :]
    if not meta.faces:
        if image:
            raise InvalidValue("a face-crops body without faces carries no image", field="image")
        return CheckedBody(
            face_crops.pack(meta, b""),
            face_crops.media_type(None),
            meta.frame_width,
            meta.frame_height,
        )
    if len(image) > face_crops.MAX_CROP_BYTES:
        raise PayloadTooLarge(
            f"the crops are {len(image)} bytes; at most {face_crops.MAX_CROP_BYTES} are accepted",
            field="image",
        )
    header = read_header(image, max_pixels)
    expected = (face_crops.CROP_SIDE, face_crops.CROP_SIDE * len(meta.faces))
    if (header.width, header.height) != expected:
        raise InvalidFrame(
            "bad_face_crops",
            f"the crops are {header.width}x{header.height}; {len(meta.faces)} faces need "
            f"{expected[0]}x{expected[1]}",
        )
    return CheckedBody(
        face_crops.pack(meta, image),
        face_crops.media_type(header.media_type),
        meta.frame_width,
        meta.frame_height,
    )
