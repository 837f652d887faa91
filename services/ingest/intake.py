"""The path of one frame, shared by the HTTP, batch and WebSocket endpoints.

Checks in a fixed order (token → lesson → live → consent → size → type →
header → rate → queue), then: bytes to Redis with a TTL, the ``queued`` row to
PostgreSQL (one INSERT, its own transaction), the reference to the queue. A
frame is acknowledged only after all three succeed; if the queue refuses, the
row and bytes are removed and the client is told to retry (503), so nothing
acknowledged is ever lost.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest.consent import consent_active
from services.ingest.deps import Resources
from services.ingest.image_header import read_header
from shared.auth import Principal
from shared.db.models import Frame, FrameStatus, Lesson
from shared.errors import (
    Conflict,
    ConsentRequired,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from shared.schemas import FrameRef, frame_key


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
    status: str = FrameStatus.QUEUED.value


def require_own_lesson(principal: Principal, lesson_id: uuid.UUID) -> uuid.UUID:
    """The token's student id if the token was issued for ``lesson_id`` (else 403)."""
    if principal.student_id is None or principal.lesson_id != lesson_id:
        raise Forbidden("this student token was issued for another lesson", field="token")
    return principal.student_id


def check_size(size: int, limit: int) -> None:
    if size > limit:
        raise PayloadTooLarge(f"frame is {size} bytes; at most {limit} are accepted", field="image")


def check_declared_type(declared: str | None, detected: str) -> None:
    """A declared image type must match the bytes (a PNG sent as image/jpeg is refused)."""
    if declared is None or declared == "application/octet-stream":
        return
    if declared != detected:
        raise UnsupportedMediaType(
            f"Content-Type says {declared} but the bytes are {detected}", field="image"
        )


@dataclass(frozen=True, slots=True)
class _Gate:
    live: bool
    consented: bool
    existing_frame: uuid.UUID | None


async def _gate(
    conn: AsyncConnection, lesson_id: uuid.UUID, student_id: uuid.UUID, seq: int
) -> _Gate:
    """Lesson state, consent and an earlier frame with this seq, in one query."""
    now = dt.datetime.now(dt.UTC)
    earlier = (
        select(Frame.id)
        .where(Frame.lesson_id == lesson_id, Frame.student_id == student_id, Frame.seq == seq)
        .scalar_subquery()
    )
    row = (
        await conn.execute(
            select(
                (Lesson.starts_at <= now) & (Lesson.ends_at >= now),
                consent_active(student_id, Lesson.class_id, Lesson.id),
                earlier,
            ).where(Lesson.id == lesson_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"lesson {lesson_id} not found", field="lesson")
    return _Gate(live=bool(row[0]), consented=bool(row[1]), existing_frame=row[2])


async def check_lesson(
    resources: Resources, lesson_id: uuid.UUID, student_id: uuid.UUID, seq: int
) -> uuid.UUID | None:
    """404/409/451 checks; the id of an earlier frame with the same seq, if any."""
    try:
        async with resources.autocommit_engine.connect() as conn:
            gate = await _gate(conn, lesson_id, student_id, seq)
    except (OperationalError, DBAPIError, OSError) as exc:
        raise ServiceUnavailable(f"database unavailable ({type(exc).__name__})") from None
    if gate.existing_frame is not None:
        # An idempotent retry: the first answer stands, whatever changed since.
        return gate.existing_frame
    if not gate.live:
        raise Conflict("the lesson is not live: frames are accepted from its start to its end")
    if not gate.consented:
        raise ConsentRequired("no active consent for this student in this lesson")
    return None


async def _insert_frame(
    resources: Resources,
    frame_id: uuid.UUID,
    lesson_id: uuid.UUID,
    student_id: uuid.UUID,
    frame: IncomingFrame,
    media_type: str,
    width: int,
    height: int,
) -> uuid.UUID | None:
    """Insert the queued row; None if a concurrent request already holds this seq."""
    statement = (
        insert(Frame)
        .values(
            id=frame_id,
            lesson_id=lesson_id,
            student_id=student_id,
            seq=frame.seq,
            captured_at=frame.captured_at,
            status=FrameStatus.QUEUED,
            media_type=media_type,
            size_bytes=len(frame.data),
            width=width,
            height=height,
        )
        .on_conflict_do_nothing(index_elements=["lesson_id", "student_id", "seq"])
        .returning(Frame.id)
    )
    async with resources.autocommit_engine.connect() as conn:
        return (await conn.execute(statement)).scalar_one_or_none()


async def _existing_frame(
    resources: Resources, lesson_id: uuid.UUID, student_id: uuid.UUID, seq: int
) -> uuid.UUID:
    async with resources.autocommit_engine.connect() as conn:
        found = await conn.scalar(
            select(Frame.id).where(
                Frame.lesson_id == lesson_id, Frame.student_id == student_id, Frame.seq == seq
            )
        )
    if found is None:  # the other request rolled back after its insert: ask for a retry
        raise ServiceUnavailable("a concurrent request with this seq did not finish; retry")
    return found


async def _remove_frame(resources: Resources, frame_id: uuid.UUID) -> None:
    async with resources.autocommit_engine.connect() as conn:
        await conn.execute(delete(Frame).where(Frame.id == frame_id))


async def accept_frame(
    resources: Resources, principal: Principal, lesson_id: uuid.UUID, frame: IncomingFrame
) -> AcceptedFrame:
    """Validate, store and queue one frame of the token's student, or raise why not."""
    config = resources.config
    student_id = require_own_lesson(principal, lesson_id)
    earlier = await check_lesson(resources, lesson_id, student_id, frame.seq)
    if earlier is not None:
        return AcceptedFrame(earlier, frame.seq)
    check_size(frame.size, config.max_frame_bytes)
    header = read_header(frame.data, config.max_frame_pixels)
    check_declared_type(frame.declared_type, header.media_type)

    frame_id = uuid.uuid4()
    await resources.admission.admit(student_id, frame_id, frame.data)
    try:
        inserted = await _insert_frame(
            resources,
            frame_id,
            lesson_id,
            student_id,
            frame,
            header.media_type,
            header.width,
            header.height,
        )
    except (OperationalError, DBAPIError, OSError) as exc:
        await resources.admission.discard(frame_id)
        raise ServiceUnavailable(f"database unavailable ({type(exc).__name__})") from None
    if inserted is None:
        await resources.admission.discard(frame_id)
        return AcceptedFrame(
            await _existing_frame(resources, lesson_id, student_id, frame.seq), frame.seq
        )

    now = dt.datetime.now(dt.UTC)
    ref = FrameRef(
        frame_id=frame_id,
        lesson_id=lesson_id,
        student_id=student_id,
        captured_at=frame.captured_at,
        enqueued_at=now,
        redis_key=frame_key(frame_id),
    )
    try:
        await resources.queue.enqueue(ref)
    except ServiceUnavailable:
        # Not queued: undo so that no row stays "queued" for a frame nobody will process.
        try:
            await _remove_frame(resources, frame_id)
        finally:
            await resources.admission.discard(frame_id)
        raise
    return AcceptedFrame(frame_id, frame.seq)
