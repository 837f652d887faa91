"""Erasure of one student's data on request (right to erasure).

Everything stored about the student goes: face events (and with them the
per-minute rollup), frames, consents, enrolments and the student row. The bytes
of frames still queued are deleted from Redis first, so that a worker that
takes one of their messages later finds neither bytes nor a frame row and drops
it. One audit entry records who erased which pseudonymous id and how much, and
nothing else about the student. These functions never commit: the request does.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import CursorResult, Delete, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.ratelimit import RATE_KEY_PREFIX, UNAVAILABLE_RETRY_AFTER
from shared.auth import Principal
from shared.db.models import (
    AuditEntry,
    Consent,
    Enrolment,
    FaceEvent,
    Frame,
    FrameStatus,
    Student,
)
from shared.errors import Forbidden, NotFound, ServiceUnavailable
from shared.schemas import frame_key

ERASE_ACTION = "student.erase"
#: Keys per Redis DEL command (a student may have many queued frames).
_DELETE_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ErasureCounts:
    face_events: int
    frames: int
    frame_bytes: int
    consents: int
    enrolments: int


async def find_student(session: AsyncSession, principal: Principal, student_ref: str) -> Student:
    """The student by LMS id in the key's organisation, or else by its ClassPulse UUID.

    404 when neither exists; 403 when the UUID names another organisation's
    student (UUIDs are not guessable, so this reveals nothing about LMS ids).
    """
    student = await session.scalar(
        select(Student)
        .where(
            Student.organisation_id == principal.organisation_id,
            Student.external_id == student_ref,
        )
        .with_for_update()
    )
    if student is not None:
        return student
    try:
        student_id = uuid.UUID(student_ref)
    except ValueError:
        student_id = None
    if student_id is not None:
        student = await session.get(Student, student_id, with_for_update=True)
    if student is None:
        raise NotFound(f"student {student_ref!r} not found", field="student")
    if student.organisation_id != principal.organisation_id:
        raise Forbidden("this student belongs to another organisation", field="student")
    return student


async def delete_queued_bytes(
    redis: Redis, student_id: uuid.UUID, frame_ids: list[uuid.UUID]
) -> int:
    """Delete the bytes of the student's queued frames and its rate key (503: Redis is down)."""
    keys = [frame_key(frame_id) for frame_id in frame_ids]
    deleted = 0
    try:
        for start in range(0, len(keys), _DELETE_CHUNK):
            deleted += int(await redis.delete(*keys[start : start + _DELETE_CHUNK]))
        await redis.delete(f"{RATE_KEY_PREFIX}{student_id}")
    except (RedisError, OSError) as exc:
        raise ServiceUnavailable(
            f"frame store unavailable ({type(exc).__name__}); nothing was erased, retry later",
            retry_after=UNAVAILABLE_RETRY_AFTER,
        ) from None
    return deleted


async def _deleted(session: AsyncSession, statement: Delete) -> int:
    result = cast(CursorResult[Any], await session.execute(statement))
    return int(result.rowcount)


async def erase_student(
    session: AsyncSession, redis: Redis, student: Student, actor: str
) -> ErasureCounts:
    """Delete every row about ``student`` and its queued frame bytes; add the audit entry."""
    sid = student.id
    queued = list(
        await session.scalars(
            select(Frame.id).where(Frame.student_id == sid, Frame.status == FrameStatus.QUEUED)
        )
    )
    frame_bytes = await delete_queued_bytes(redis, sid, queued)

    counts = ErasureCounts(
        # Events first: their delete trigger takes them out of the per-minute rollup.
        face_events=await _deleted(session, delete(FaceEvent).where(FaceEvent.student_id == sid)),
        frames=await _deleted(session, delete(Frame).where(Frame.student_id == sid)),
        frame_bytes=frame_bytes,
        consents=await _deleted(session, delete(Consent).where(Consent.student_id == sid)),
        enrolments=await _deleted(session, delete(Enrolment).where(Enrolment.student_id == sid)),
    )
    await session.delete(student)
    session.add(
        AuditEntry(
            actor=actor, action=ERASE_ACTION, subject=f"student:{sid}", details=asdict(counts)
        )
    )
    return counts
