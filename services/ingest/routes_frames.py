"""Frame intake over HTTP: one frame (raw body or multipart) or a batch."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, NonNegativeInt, TypeAdapter, ValidationError
from starlette.datastructures import FormData, UploadFile

from services.ingest.body import capped, read_capped, too_large
from services.ingest.deps import ResourcesDep, StudentDep
from services.ingest.errors import error_responses, retry_after_seconds
from services.ingest.image_header import MEDIA_TYPES
from services.ingest.intake import IncomingFrame, accept_frame, require_own_lesson
from services.ingest.schemas import BatchItem, BatchOut, FrameAccepted
from shared.errors import ClassPulseError

router = APIRouter(prefix="/v1/lessons/{lesson_id}", tags=["frames (student token)"])

_SEQ = TypeAdapter(NonNegativeInt)
_CAPTURED_AT = TypeAdapter(AwareDatetime)
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_MULTIPART = {
    "schema": {
        "type": "object",
        "required": ["image", "seq", "captured_at"],
        "properties": {
            "image": {"type": "string", "format": "binary"},
            "seq": {"type": "integer", "minimum": 0},
            "captured_at": {"type": "string", "format": "date-time"},
        },
    }
}
_FRAME_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {**dict.fromkeys(MEDIA_TYPES, _BINARY), "multipart/form-data": _MULTIPART},
    }
}
_FRAME_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 451, 503)
#: Room for multipart boundaries and fields around the image.
_MULTIPART_OVERHEAD = 64 * 1024
_BODY_NOTE = (
    " The body is capped while it streams: over `CLASSPULSE_MAX_FRAME_BYTES` (or a "
    "`Content-Length` over it) answers 413 at once, before the lesson checks and "
    "without reading further. A refused body (400, 413, 415, 422) costs the student's "
    "rate as a stored frame does: once it is used up, refusals too are answered 429."
)
#: Request validation of the body's fields: refused bodies too, charged to the rate.
_REFUSED_FIELDS = (RequestValidationError,)


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


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
    """The multipart form, its body capped while it streams (413 once over)."""
    body = capped(request, max_files * frame_limit + _MULTIPART_OVERHEAD, frame_limit)
    try:
        return await body.form(max_files=max_files, max_fields=3 * max_files + 4)
    except ClassPulseError:
        raise
    except Exception as exc:  # python-multipart's errors: a malformed body is a 422
        raise _invalid("image", f"unreadable multipart body ({exc})") from None


@router.post(
    "/frames",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_FRAME_ERRORS,
    openapi_extra=_FRAME_BODY,
    summary="Send one frame (raw image body, or multipart with image, seq, captured_at)",
    description=(
        "Checks, in order: token (401, 403 for another lesson), lesson (404), lesson live "
        "(409), `captured_at` within the lesson so far, give or take "
        "`CLASSPULSE_CLOCK_SKEW_SECONDS` (422), consent (451), size (413), type by magic "
        "bytes (415), header dimensions (400), the student's rate and the queue length "
        "(429 + Retry-After), the stores (503 + Retry-After). Only the header is read: a "
        "body with a valid header and truncated data is accepted here and ends `failed` "
        "with its reason in the worker. A repeated `seq` answers with the first frame id "
        "and queues nothing." + _BODY_NOTE
    ),
)
async def post_frame(
    lesson_id: uuid.UUID,
    request: Request,
    principal: StudentDep,
    resources: ResourcesDep,
    seq: Annotated[int | None, Query(ge=0, description="Client sequence number")] = None,
    captured_at: Annotated[
        AwareDatetime | None, Query(description="Capture time, ISO 8601 with timezone")
    ] = None,
) -> FrameAccepted:
    student_id = require_own_lesson(principal, lesson_id)
    async with resources.admission.counting_refusals(student_id, also=_REFUSED_FIELDS):
        limit = resources.config.max_frame_bytes
        media_type = _media_type(request)
        if media_type == "multipart/form-data":
            form = await _form(request, max_files=1, frame_limit=limit)
            seq = _validated(_SEQ, "seq", form.get("seq"))
            captured_at = _validated(_CAPTURED_AT, "captured_at", form.get("captured_at"))
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise _invalid("image", "an 'image' file part is required")
            data = await _read_upload(upload, limit)
            declared = None  # part types are often generic; the magic bytes decide
        else:
            if seq is None:
                raise _invalid("seq", "query parameter seq is required with a raw body")
            if captured_at is None:
                raise _invalid("captured_at", "query parameter captured_at is required")
            data = await read_capped(request, limit)
            declared = media_type or None
        if not data:
            raise _invalid("image", "the image is empty")
        frame = IncomingFrame(seq, captured_at, data, len(data), declared)
        accepted = await accept_frame(resources, principal, lesson_id, frame)
    return FrameAccepted(frame_id=accepted.frame_id, seq=accepted.seq)


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
                            "seq": {"type": "array", "items": {"type": "integer"}},
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
    config = resources.config
    admission = resources.admission
    student_id = require_own_lesson(principal, lesson_id)
    async with admission.counting_refusals(student_id, also=_REFUSED_FIELDS):
        if _media_type(request) != "multipart/form-data":
            raise _invalid(
                "image", "a batch is multipart/form-data with image, seq, captured_at parts"
            )
        form = await _form(
            request, max_files=config.max_batch_frames, frame_limit=config.max_frame_bytes
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
                data = await _read_upload(upload, config.max_frame_bytes)
                if not data:
                    raise _invalid("image", "the image is empty")
                accepted = await accept_frame(
                    resources, principal, lesson_id, IncomingFrame(seq, captured, data, len(data))
                )
            results.append(BatchItem(seq=seq, status=202, frame_id=accepted.frame_id))
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
