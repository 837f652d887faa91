"""Frame intake over HTTP: one frame (raw body or multipart) or a batch."""

from __future__ import annotations

import datetime as dt
import uuid
from contextlib import aclosing
from typing import Any, Literal

from fastapi import APIRouter, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, TypeAdapter, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartParser

from services.ingest.body import capped, read_capped, too_large
from services.ingest.crop_check import MEDIA_TYPE as FACE_CROPS_TYPE
from services.ingest.deps import ResourcesDep, StudentDep
from services.ingest.errors import error_responses, retry_after_seconds
from services.ingest.image_header import MEDIA_TYPES
from services.ingest.intake import (
    IncomingFrame,
    accept_frame,
    check_lesson_open,
    require_own_lesson,
)
from services.ingest.schemas import MAX_SEQ, BatchItem, BatchOut, FrameAccepted, Seq
from shared.errors import ClassPulseError

router = APIRouter(prefix="/v1/lessons/{lesson_id}", tags=["frames (student token)"])

_SEQ: TypeAdapter[int] = TypeAdapter(Seq)
_CAPTURED_AT = TypeAdapter(AwareDatetime)
#: Frames one batch request may carry.
MAX_BATCH_FRAMES = 16
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_INSTEAD = "Instead of the query parameter of the same name (which wins when both are sent)."
_MULTIPART = {
    "schema": {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "binary"},
            "seq": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ, "description": _INSTEAD},
            "captured_at": {"type": "string", "format": "date-time", "description": _INSTEAD},
        },
    }
}
#: The query parameters are declared here, not as FastAPI parameters: the document says
#: they are required (as they are with a raw body, the usual way), while an older
#: multipart client may still send them as form fields; and the route reports every
#: missing or invalid field at once.
_FRAME_QUERY = [
    {
        "name": "seq",
        "in": "query",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
        "description": "Client sequence number of this student's frames in the lesson; a "
        "repeated one is an idempotent retry",
    },
    {
        "name": "captured_at",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "format": "date-time"},
        "description": "Capture time, ISO 8601 with a timezone",
    },
]
_FRAME_BODY: dict[str, Any] = {
    "parameters": _FRAME_QUERY,
    "requestBody": {
        "required": True,
        "content": {
            **dict.fromkeys((*MEDIA_TYPES, FACE_CROPS_TYPE), _BINARY),
            "multipart/form-data": _MULTIPART,
        },
    },
}
_FRAME_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 451, 503)
#: Room for multipart boundaries and fields around the image.
_MULTIPART_OVERHEAD = 64 * 1024
_BODY_NOTE = (
    " Instead of a frame, a browser that finds faces itself sends its aligned face crops "
    f"(`{FACE_CROPS_TYPE}`: the bytes `CPFC`, the JSON metadata's length as 4 bytes "
    "big-endian, the metadata (`frame_width`, `frame_height`, `detector`, and per face its "
    "`score`, `box` and `keypoints`), then one gray image of the crops stacked, 96 px wide "
    "and 96 px high per face; no image when no face was found). It is checked like a frame "
    "(limits, rate, consent) and counted as one."
    " The body is capped while it streams: over `CLASSPULSE_MAX_FRAME_BYTES` (or a "
    "`Content-Length` over it) answers 413 at once, before the lesson checks and "
    "without reading further. A refused body (400, 413, 415, 422) costs the student's "
    "rate as a stored frame does: once it is used up, refusals too are answered 429."
)
#: Request validation of the body's fields: refused bodies too, charged to the rate.
_REFUSED_FIELDS = (RequestValidationError,)


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


class _Fields:
    """Field problems of one request, collected to be reported together."""

    def __init__(self) -> None:
        self.problems: list[dict[str, Any]] = []

    def value(self, adapter: TypeAdapter[Any], loc: tuple[str, str], raw: object) -> Any:
        """``raw`` validated, or None with its problem recorded."""
        if raw is None or isinstance(raw, UploadFile):
            self.problems.append({"loc": loc, "msg": "field required", "type": "missing"})
            return None
        try:
            if isinstance(raw, str):
                return adapter.validate_strings(raw)
            return adapter.validate_python(raw)
        except ValidationError as exc:
            self.problems.append({"loc": loc, "msg": exc.errors()[0]["msg"], "type": "value_error"})
            return None

    def add(self, field: str, message: str) -> None:
        self.problems.append({"loc": ("body", field), "msg": message, "type": "value_error"})


def _validated(adapter: TypeAdapter[Any], field: str, value: object) -> Any:
    if value is None or isinstance(value, UploadFile):
        raise _invalid(field, "field required")
    try:
        if isinstance(value, str):
            return adapter.validate_strings(value)
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise _invalid(field, exc.errors()[0]["msg"]) from None


async def _read_upload(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise too_large(limit)
    return data


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _form(request: Request, max_files: int, frame_limit: int) -> FormData:
    """The multipart form, its body capped while it streams (413 once over), all in memory.

    Starlette spools a file part over ``MultiPartParser.spool_max_size`` (1 MB)
    to a temporary file, and a frame must never reach a disk: with a spool
    size at the body's cap, no part can grow past it.
    """
    body_limit = max_files * frame_limit + _MULTIPART_OVERHEAD
    body = capped(request, body_limit, frame_limit)
    try:
        async with aclosing(body.stream()) as stream:
            parser = MultiPartParser(
                body.headers, stream, max_files=max_files, max_fields=3 * max_files + 4
            )
            parser.spool_max_size = body_limit
            return await parser.parse()
    except ClassPulseError:
        raise
    except Exception as exc:  # python-multipart's errors: a malformed body is a 422
        raise _invalid("image", f"unreadable multipart body ({exc})") from None


@router.post(
    "/frames",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_FRAME_ERRORS,
    openapi_extra=_FRAME_BODY,
    summary="Send one frame (raw image body with seq and captured_at in the query, or multipart)",
    description=(
        "Checks, in order: token (401, 403 for another lesson), lesson (404), lesson live "
        "(409), consent (451), the fields (422, every problem at once in `error.errors`), "
        "`captured_at` within the lesson so far, give or take "
        "`CLASSPULSE_CLOCK_SKEW_SECONDS` (422), size (413), type by magic "
        "bytes (415), header dimensions (400), the student's rate and the queue length "
        "(429 + Retry-After), the stores (503 + Retry-After). Only the header is read: a "
        "body with a valid header and truncated data is accepted here and ends `failed` "
        "with its reason in the worker. A repeated `seq` answers with the first frame id "
        "and status `repeated`, and queues nothing." + _BODY_NOTE
    ),
)
async def post_frame(
    lesson_id: uuid.UUID, request: Request, principal: StudentDep, resources: ResourcesDep
) -> FrameAccepted:
    student_id = require_own_lesson(principal, lesson_id)
    async with resources.admission.counting_refusals(student_id, also=_REFUSED_FIELDS):
        limit = resources.settings.max_frame_bytes
        media_type = _media_type(request)
        fields = _Fields()
        query = request.query_params
        raw_seq: object = query.get("seq")
        raw_time: object = query.get("captured_at")
        seq_loc = time_loc = ("query", "")
        data = b""
        declared = None
        if media_type == "multipart/form-data":
            form = await _form(request, max_files=1, frame_limit=limit)
            if raw_seq is None and "seq" in form:
                raw_seq, seq_loc = form.get("seq"), ("body", "")
            if raw_time is None and "captured_at" in form:
                raw_time, time_loc = form.get("captured_at"), ("body", "")
            upload = form.get("image")
            if isinstance(upload, UploadFile):
                data = await _read_upload(upload, limit)
                if not data:
                    fields.add("image", "the image is empty")
            else:
                fields.add("image", "an 'image' file part is required")
            # part types are often generic; the magic bytes decide
        else:
            data = await read_capped(request, limit)
            declared = media_type or None
            if not data:
                fields.add("image", "the image is empty")
        seq = fields.value(_SEQ, (seq_loc[0], "seq"), raw_seq)
        captured_at = fields.value(_CAPTURED_AT, (time_loc[0], "captured_at"), raw_time)
        if fields.problems:
            # A lesson that is unknown, closed or without consent says so first.
            await check_lesson_open(resources, lesson_id, student_id)
            raise RequestValidationError(fields.problems)
        frame = IncomingFrame(seq, captured_at, data, len(data), declared)
        accepted = await accept_frame(resources, principal, lesson_id, frame)
    status: Literal["queued", "repeated"] = "repeated" if accepted.repeated else "queued"
    return FrameAccepted(frame_id=accepted.frame_id, status=status, seq=accepted.seq)


def _batch_item(seq: int | None, exc: ClassPulseError) -> BatchItem:
    return BatchItem(
        seq=seq,
        status=exc.status,
        error={"code": exc.code, "message": exc.message, "field": exc.field},
        retry_after=retry_after_seconds(exc),
    )


@router.post(
    "/frames:batch",
    status_code=207,
    responses=_FRAME_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "image": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            },
                            "seq": {
                                "type": "array",
                                "items": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
                            },
                            "captured_at": {
                                "type": "array",
                                "items": {"type": "string", "format": "date-time"},
                            },
                        },
                    }
                }
            },
        }
    },
    summary="Send several frames of one student; one result per frame, in order",
)
async def post_frames_batch(
    lesson_id: uuid.UUID, request: Request, principal: StudentDep, resources: ResourcesDep
) -> JSONResponse:
    settings = resources.settings
    admission = resources.admission
    student_id = require_own_lesson(principal, lesson_id)
    async with admission.counting_refusals(student_id, also=_REFUSED_FIELDS):
        if _media_type(request) != "multipart/form-data":
            raise _invalid(
                "image", "a batch is multipart/form-data with image, seq, captured_at parts"
            )
        form = await _form(
            request, max_files=MAX_BATCH_FRAMES, frame_limit=settings.max_frame_bytes
        )
        images, seqs = form.getlist("image"), form.getlist("seq")
        times = form.getlist("captured_at")
        if not images:
            raise _invalid("image", "at least one 'image' part is required")
        if not len(images) == len(seqs) == len(times):
            raise _invalid("seq", "send one seq and one captured_at per image, in the same order")
    results: list[BatchItem] = []
    for upload, raw_seq, raw_time in zip(images, seqs, times, strict=True):
        seq: int | None = None
        try:
            # Each frame's refusal costs the rate as it would on its own.
            async with admission.counting_refusals(student_id, also=_REFUSED_FIELDS):
                seq = _validated(_SEQ, "seq", raw_seq)
                captured: dt.datetime = _validated(_CAPTURED_AT, "captured_at", raw_time)
                if not isinstance(upload, UploadFile):
                    raise _invalid("image", "'image' parts must be files")
                data = await _read_upload(upload, settings.max_frame_bytes)
                if not data:
                    raise _invalid("image", "the image is empty")
                accepted = await accept_frame(
                    resources, principal, lesson_id, IncomingFrame(seq, captured, data, len(data))
                )
            results.append(
                BatchItem(
                    seq=seq, status=202, frame_id=accepted.frame_id, repeated=accepted.repeated
                )
            )
        except ClassPulseError as exc:
            results.append(_batch_item(seq, exc))
        except RequestValidationError as exc:
            msg = str(exc.errors()[0]["msg"])
            results.append(
                BatchItem(
                    seq=seq,
                    status=422,
                    error={
                        "code": "validation_error",
                        "message": msg,
                        "field": str(exc.errors()[0]["loc"][-1]),
                    },
                )
            )
    return JSONResponse(BatchOut(results=results).model_dump(mode="json"), status_code=207)
