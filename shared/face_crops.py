"""The face-crops frame: faces a browser found and aligned itself, sent instead of a frame.

The classroom page runs the server's BlazeFace on the camera frame, aligns each
face as ``shared.vision.align`` does and sends only the aligned crops, stacked
top to bottom in one gray image of ``CROP_SIDE`` x (``CROP_SIDE`` x faces)
pixels, with the detector's score, box and keypoints per face in frame pixels
(``FaceCrops``). A page that finds no face sends ``FaceCrops`` with no faces
and no image, so face presence still counts.

Between ingest and the worker the crops wait in Redis as one value, the
metadata and image together (``pack``/``unpack``), under the frame's key and
TTL: the queue message stays a plain reference, a lost message is queued again
unchanged, and erasure and expiry delete one key as for any frame. No other
image starts with ``MAGIC`` (ingest checks the magic bytes of every image).
"""

from __future__ import annotations

import struct
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import InvalidFrame

#: Wire name and version of the kind; a new layout gets a new version.
KIND = "face_crops"
VERSION = 1
#: Side of one face's crop: the server's own supersampled warp (48 px x
#: ``shared.vision.align.SUPERSAMPLE``), which the worker area-averages to 48,
#: so the last resampling step stays the server's and a larger model could
#: use the crop as it is.
CROP_SIDE = 96
#: Most faces one frame may carry: a student's webcam, a sibling in view.
MAX_FACES = 4
#: Largest crop image accepted: a 96 x 384 gray PNG of four faces is about 25 KB.
MAX_CROP_BYTES = 64 * 1024
#: Largest camera frame side the boxes may refer to.
MAX_FRAME_SIDE = 8192
#: Detectors the page runs (the server's BlazeFace weights).
ClientDetector = Literal["blazeface-full", "blazeface-short"]
#: Prefix of a face-crops value in Redis; then 4 bytes (big-endian) of JSON length.
MAGIC = b"CPFC"
_LENGTH = struct.Struct(">I")
#: ``frames.media_type`` of a face-crops frame: the kind, its version and the image type.
MEDIA_TYPE_PREFIX = f"crops.v{VERSION}/"
NO_IMAGE = "none"

Coordinate = Annotated[float, Field(ge=-MAX_FRAME_SIDE, le=2 * MAX_FRAME_SIDE)]
Point = tuple[Coordinate, Coordinate]


class CropFace(BaseModel):
    """One face as the page's detector found it, in camera-frame pixels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    score: float = Field(ge=0, le=1, description="The detector's confidence")
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate] = Field(
        description="x0, y0, x1, y1 as detected, not clipped to the frame"
    )
    keypoints: tuple[Point, Point, Point, Point] = Field(
        description="Right eye, left eye, nose tip, mouth centre (the person's own right/left)"
    )


class FaceCrops(BaseModel):
    """Metadata of a face-crops frame; the crops themselves travel as one image."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["face_crops"] = "face_crops"
    version: Literal[1] = 1
    frame_width: int = Field(gt=0, le=MAX_FRAME_SIDE, description="Camera frame the boxes are in")
    frame_height: int = Field(gt=0, le=MAX_FRAME_SIDE)
    detector: ClientDetector
    faces: list[CropFace] = Field(
        default_factory=list,
        max_length=MAX_FACES,
        description="Left to right; empty when the page found no face (then no image is sent)",
    )


def media_type(crop_media_type: str | None) -> str:
    """``frames.media_type`` of a face-crops frame with this crop image type (None: no face)."""
    subtype = NO_IMAGE if crop_media_type is None else crop_media_type.split("/", 1)[1]
    return MEDIA_TYPE_PREFIX + subtype


def pack(meta: FaceCrops, image: bytes) -> bytes:
    """One Redis value: magic, JSON length, JSON metadata, crop image (empty for no face)."""
    body = meta.model_dump_json().encode()
    return MAGIC + _LENGTH.pack(len(body)) + body + image


def is_packed(data: bytes) -> bool:
    return data.startswith(MAGIC)


def unpack(data: bytes) -> tuple[FaceCrops, bytes]:
    """The metadata and crop image of a ``pack``ed value, or ``InvalidFrame``."""
    start = len(MAGIC) + _LENGTH.size
    if not is_packed(data) or len(data) < start:
        raise InvalidFrame("bad_face_crops", "not a face-crops value")
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    try:
        meta = FaceCrops.model_validate_json(data[start : start + length])
    except ValidationError:
        raise InvalidFrame("bad_face_crops", "face-crops metadata unreadable") from None
    return meta, data[start + length :]
