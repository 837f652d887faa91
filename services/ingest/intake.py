"""The path of one frame, shared by the HTTP, batch and WebSocket endpoints.

Checks in a fixed order (token → lesson → live → consent → capture time →
size → type → header, or a browser's face crops instead → rate → queue),
then: bytes to Redis with a TTL, the ``queued`` row to PostgreSQL (one INSERT,
its own transaction), the reference
to the queue. A frame is acknowledged only after all three succeed; if the
queue refuses, the row and bytes are removed and the client is told to retry
(503), so nothing acknowledged is ever lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import Interval, bindparam, delete, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest.config import IngestSettings
from services.ingest.crop_check import CheckedBody, check_face_crops
from services.ingest.deps import IngestResources
from services.ingest.image_header import read_header
from shared import metrics, tracing
from shared.auth import Principal
from shared.consent import party_consents
from shared.db import partitions
from shared.db.models import ConsentParty, Frame, FrameStatus, Lesson, SchoolClass
from shared.errors import (
    Conflict,
    ConsentRequired,
    Forbidden,
    InvalidValue,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from shared.face_crops import is_packed
from shared.schemas import FrameRef, frame_key

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IncomingFrame:
    seq: int
    captured_at: dt.datetime
    data: bytes
    #: Bytes the client sent; larger than ``data`` when reading stopped at the limit.
    size: int
    #: The client's Content-Type, checked against the magic bytes (None: not declared).
    declared_type: str | None = None


@dataclass(frozen=True, slots=True)
class AcceptedFrame:
    frame_id: uuid.UUID
    seq: int
    #: The seq was accepted before (a retry, or a concurrent request that won the
    #: race): the frame id is the earlier one's and nothing was queued.
    repeated: bool = False


def require_own_lesson(principal: Principal, lesson_id: uuid.UUID) -> uuid.UUID:
    """The token's student id if the token was issued for ``lesson_id`` (else 403)."""
    if principal.student_id is None or principal.lesson_id != lesson_id:
        raise Forbidden("this student token was issued for another lesson", field="token")
    return principal.student_id


def check_size(size: int, limit: int) -> None:
    if size > limit:
        raise PayloadTooLarge(f"frame is {size} bytes; at most {limit} are accepted", field="image")


#: Non-standard names clients use for JPEG.
_TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}


def check_declared_type(declared: str | None, detected: str) -> None:
    """A declared image type must match the bytes (a PNG sent as image/jpeg is refused)."""
    if declared is None or declared == "application/octet-stream":
        return
    if _TYPE_ALIASES.get(declared, declared) != detected:
        raise UnsupportedMediaType(
            f"Content-Type says {declared} but the bytes are {detected}", field="image"
        )


@dataclass(frozen=True, slots=True)
class CropsMode:
    """Whether a lesson takes face crops, and which setting decided it."""

    on: bool
    source: str


def crops_mode(settings: IngestSettings, class_crops: bool | None) -> CropsMode:
    """The class's own setting, else the deployment's."""
    if class_crops is not None:
        return CropsMode(class_crops, "this class's client_detection")
    return CropsMode(settings.client_detection, "CLASSPULSE_CLIENT_DETECTION")


def check_body(frame: IncomingFrame, max_pixels: int, *, crops: CropsMode) -> CheckedBody:
    """A frame's type and header, or a browser's face crops (``shared.face_crops``).

    With crops off the server finds faces itself, so a body of crops, whose faces a
    client chose, is refused.
    """
    if is_packed(frame.data):
        if not crops.on:
            raise UnsupportedMediaType(
                f"face crops are off for this lesson ({crops.source} is false): "
                "send the whole frame",
                field="image",
            )
        return check_face_crops(frame.data, frame.declared_type, max_pixels)
    header = read_header(frame.data, max_pixels)
    check_declared_type(frame.declared_type, header.media_type)
    return CheckedBody(frame.data, header.media_type, header.width, header.height)


def check_capture_time(
    captured_at: dt.datetime,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    now: dt.datetime,
    skew: dt.timedelta,
) -> None:
    """A capture time within the lesson and not ahead of ``now``, give or take ``skew`` (else 422).

    Outside, a time would be stored as PostgreSQL's ±infinity (years 1 and
    9999), break the lesson's time buckets, or escape retention.
    """
    earliest = partitions.shifted(starts_at, -skew)
    latest = partitions.shifted(min(ends_at, now), skew)
    if not earliest <= captured_at <= latest:
        raise InvalidValue(
            f"captured_at {captured_at.isoformat()} is not a time of this lesson so far: "
            f"capture times lie between {_iso(earliest)} and {_iso(latest)} (the lesson's "
            f"start to now, give or take {skew.total_seconds():g} s of clock skew); check "
            "the device's clock",
            field="captured_at",
        )


def _iso(at: dt.datetime) -> str:
    with contextlib.suppress(OverflowError):
        at = at.astimezone(dt.UTC)
    return at.isoformat().replace("+00:00", "Z")


# Statements are built once (bound parameters per call): building SQLAlchemy
# expressions per request costs more CPU than PostgreSQL spends answering them.
_GATE = (
    select(
        (Lesson.starts_at <= bindparam("now")) & (Lesson.ends_at >= bindparam("now")),
        Lesson.starts_at,
        Lesson.ends_at,
        party_consents(ConsentParty.SCHOOL, bindparam("student_id"), Lesson.class_id, Lesson.id),
        party_consents(ConsentParty.STUDENT, bindparam("student_id"), Lesson.class_id, Lesson.id),
        select(Frame.id)
        .where(
            Frame.lesson_id == bindparam("lesson_id"),
            Frame.student_id == bindparam("student_id"),
            Frame.seq == bindparam("seq"),
            # Accepted frames lie within their lesson give or take the skew: this
            # reads that day's partition (or two), not every day's.
            Frame.captured_at.between(
                Lesson.starts_at - bindparam("skew", type_=Interval),
                Lesson.ends_at + bindparam("skew", type_=Interval),
            ),
        )
        # One is enough; a pair stored before migration 0013 must not fail the gate.
        .limit(1)
        .scalar_subquery(),
        SchoolClass.client_detection,
    )
    .join_from(Lesson, SchoolClass, SchoolClass.id == Lesson.class_id)
    .where(Lesson.id == bindparam("lesson_id"))
)
#: A new ``queued`` row's columns as typed parameters, for both INSERTs.
_ROW = {
    "id": bindparam("frame_id", type_=Frame.__table__.c.id.type),
    **{
        name: bindparam(name, type_=Frame.__table__.c[name].type)
        for name in (
            "lesson_id",
            "student_id",
            "seq",
            "captured_at",
            "media_type",
            "size_bytes",
            "width",
            "height",
        )
    },
    "status": literal(FrameStatus.QUEUED, Frame.__table__.c.status.type),
}
# No conflict target: one frame per seq is a unique index of each day partition
# (``shared.db.partitions``), which a partitioned table's parent cannot name.
_INSERT = insert(Frame).values(_ROW).on_conflict_do_nothing().returning(Frame.id)
#: For a lesson over midnight UTC, whose frames lie in two day partitions: the
#: row only if no frame of the seq is in either day, checked under a per-seq lock
#: held until this INSERT commits (migration 0013's ``frame_seq_is_new``).
_INSERT_ONCE = (
    insert(Frame)
    .from_select(
        list(_ROW),
        select(*_ROW.values()).where(
            func.frame_seq_is_new(
                bindparam("lesson_id"),
                bindparam("student_id"),
                bindparam("seq"),
                bindparam("earliest"),
                bindparam("latest"),
            )
        ),
    )
    .on_conflict_do_nothing()
    .returning(Frame.id)
)
#: Any frame of this seq within the lesson's capture times: the partition of its
#: day, or of each day for a lesson over midnight.
_EARLIER = (
    select(Frame.id)
    .where(
        Frame.lesson_id == bindparam("lesson_id"),
        Frame.student_id == bindparam("student_id"),
        Frame.seq == bindparam("seq"),
        Frame.captured_at.between(bindparam("earliest"), bindparam("latest")),
    )
    .limit(1)
)
_DELETE = delete(Frame).where(
    Frame.id == bindparam("frame_id"), Frame.captured_at == bindparam("captured_at")
)


@dataclass(frozen=True, slots=True)
class LessonGate:
    """What the lesson's checks tell the rest of a frame's path."""

    #: The frame already accepted with this seq: an idempotent retry answers with it.
    earlier: uuid.UUID | None
    #: The class's own face-crops mode; None follows the deployment's.
    class_crops: bool | None
    #: The lesson's ``partitions.capture_window``.
    earliest: dt.datetime
    latest: dt.datetime
    #: Its frames may lie in two UTC day partitions (``partitions.over_midnight``).
    over_midnight: bool


async def check_lesson(
    conn: AsyncConnection,
    lesson_id: uuid.UUID,
    student_id: uuid.UUID,
    frame: IncomingFrame,
    skew: dt.timedelta,
) -> LessonGate:
    """404/409/422/451 checks in one query."""
    now = dt.datetime.now(dt.UTC)
    params = {
        "now": now,
        "lesson_id": lesson_id,
        "student_id": student_id,
        "seq": frame.seq,
        "skew": skew,
    }
    row = (await conn.execute(_GATE, params)).first()
    if row is None:
        raise NotFound(f"lesson {lesson_id} not found", field="lesson")
    live, starts_at, ends_at, school, student, earlier, class_crops = row
    # The largest skew any deployment allows, not this process's: replicas with
    # different settings must agree on which INSERT a lesson's frames take.
    window = partitions.capture_window(starts_at, ends_at)
    midnight = partitions.over_midnight(starts_at, ends_at)
    if earlier is not None:
        # An idempotent retry: the first answer stands, whatever changed since.
        return LessonGate(uuid.UUID(str(earlier)), class_crops, *window, midnight)
    refuse_closed(live, school, student)
    check_capture_time(frame.captured_at, starts_at, ends_at, now, skew)
    return LessonGate(None, class_crops, *window, midnight)


def refuse_closed(live: bool, school: bool, student: bool) -> None:
    """409 when the lesson is not live, 451 without both consents.

    Consent comes before any check of the frame itself (capture time, fields,
    bytes): a student who may not send learns that, not how to fix a frame.
    """
    if not live:
        raise Conflict("the lesson is not live: frames are accepted from its start to its end")
    if not (school and student):
        parts = (("the school's permission", school), ("the student's own consent", student))
        missing = " and ".join(what for what, given in parts if not given)
        raise ConsentRequired(
            f"no active consent for this lesson: missing {missing}; processing needs both "
            "the school's permission and the student's own consent"
        )


async def check_lesson_open(
    resources: IngestResources, lesson_id: uuid.UUID, student_id: uuid.UUID
) -> None:
    """The lesson's 404, 409 and 451 checks alone, for a request about to be refused for
    its fields: those refusals come first, as they do for a well-formed frame."""
    params = {"now": dt.datetime.now(dt.UTC), "lesson_id": lesson_id, "student_id": student_id}
    try:
        async with resources.frames_engine.connect() as conn:
            # seq -1 matches no frame: no earlier frame short-cuts the checks.
            gate = {**params, "seq": -1, "skew": dt.timedelta(0)}
            row = (await conn.execute(_GATE, gate)).first()
    except (OperationalError, DBAPIError, PoolTimeout, OSError) as exc:
        raise ServiceUnavailable(f"database unavailable ({type(exc).__name__})") from None
    if row is None:
        raise NotFound(f"lesson {lesson_id} not found", field="lesson")
    live, _, _, school, student, _, _ = row
    refuse_closed(live, school, student)


async def accept_frame(
    resources: IngestResources, principal: Principal, lesson_id: uuid.UUID, frame: IncomingFrame
) -> AcceptedFrame:
    """Validate, store and queue one frame of the token's student, or raise why not."""
    student_id = require_own_lesson(principal, lesson_id)
    try:
        # One pooled connection for the whole frame; each statement is its own
        # transaction (autocommit), the INSERT being the frame's one commit.
        async with resources.frames_engine.connect() as conn:
            return await _accept(resources, conn, student_id, lesson_id, frame)
    except (OperationalError, DBAPIError, PoolTimeout, OSError) as exc:
        raise ServiceUnavailable(f"database unavailable ({type(exc).__name__})") from None


async def _accept(
    resources: IngestResources,
    conn: AsyncConnection,
    student_id: uuid.UUID,
    lesson_id: uuid.UUID,
    frame: IncomingFrame,
) -> AcceptedFrame:
    settings = resources.settings
    skew = dt.timedelta(seconds=settings.clock_skew_seconds)
    gate = await check_lesson(conn, lesson_id, student_id, frame, skew)
    if gate.earlier is not None:
        return AcceptedFrame(gate.earlier, frame.seq, repeated=True)
    check_size(frame.size, settings.max_frame_bytes)
    body = check_body(
        frame, settings.max_frame_pixels, crops=crops_mode(settings, gate.class_crops)
    )

    frame_id = uuid.uuid4()
    tracing.mark_frame(frame_id)
    await resources.admission.admit(student_id, frame_id, body.stored)
    key = {"lesson_id": lesson_id, "student_id": student_id, "seq": frame.seq}
    row = {
        **key,
        "frame_id": frame_id,
        "captured_at": frame.captured_at,
        "media_type": body.media_type,
        "size_bytes": len(frame.data),
        "width": body.width,
        "height": body.height,
    }
    try:
        if gate.over_midnight:
            inserted = await conn.scalar(_INSERT_ONCE, {**row, **_window(gate)})
        else:
            inserted = await conn.scalar(_INSERT, row)
    except BaseException:
        await resources.admission.discard(frame_id)
        raise
    if inserted is None:
        # A concurrent request with the same seq won the race: answer with its frame.
        await resources.admission.discard(frame_id)
        winner = await conn.scalar(_EARLIER, {**key, **_window(gate)})
        if winner is None:
            raise ServiceUnavailable("a concurrent request with this seq did not finish; retry")
        return AcceptedFrame(winner, frame.seq, repeated=True)

    ref = FrameRef(
        frame_id=frame_id,
        lesson_id=lesson_id,
        student_id=student_id,
        captured_at=frame.captured_at,
        enqueued_at=dt.datetime.now(dt.UTC),
        redis_key=frame_key(frame_id),
    )
    try:
        await resources.queue.enqueue(ref)
    except ServiceUnavailable:
        # Not queued: undo so that no row stays "queued" for a frame nobody will process.
        try:
            await conn.execute(_DELETE, {"frame_id": frame_id, "captured_at": frame.captured_at})
        finally:
            await resources.admission.discard(frame_id)
        raise
    metrics.FRAMES_ACCEPTED.inc()
    log.debug(
        "frame %s accepted (seq %d)",
        frame_id,
        frame.seq,
        extra={"frame_id": str(frame_id), "lesson_id": str(lesson_id), "seq": frame.seq},
    )
    return AcceptedFrame(frame_id, frame.seq)


def _window(gate: LessonGate) -> dict[str, dt.datetime]:
    return {"earliest": gate.earliest, "latest": gate.latest}
