"""Lessons a key can see, and frame counts by status."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.access import lesson_is_live
from shared.auth import Principal, PrincipalKind
from shared.db import partitions
from shared.db.models import Frame, FrameStatus, Lesson, SchoolClass
from shared.errors import Forbidden

#: Lessons listed at most (newest first).
LESSON_LIST_LIMIT = 500


def lesson_info(lesson: Lesson, school_class: SchoolClass, now: dt.datetime) -> dict[str, object]:
    return {
        "id": lesson.id,
        "title": lesson.title,
        "class_id": school_class.id,
        "class_title": school_class.title,
        "starts_at": lesson.starts_at,
        "ends_at": lesson.ends_at,
        "is_demo": lesson.is_demo,
        "is_live": lesson_is_live(lesson, now),
    }


async def visible_lessons(session: AsyncSession, principal: Principal) -> list[dict[str, object]]:
    """Lessons of the LMS key's organisation or the teacher key's class, newest first."""
    query = select(Lesson, SchoolClass).join(SchoolClass, SchoolClass.id == Lesson.class_id)
    if principal.kind == PrincipalKind.LMS:
        query = query.where(SchoolClass.organisation_id == principal.organisation_id)
    elif principal.kind == PrincipalKind.TEACHER:
        query = query.where(SchoolClass.id == principal.class_id)
    else:
        raise Forbidden("listing lessons needs an LMS or teacher API key")
    query = query.order_by(Lesson.starts_at.desc()).limit(LESSON_LIST_LIMIT)
    now = dt.datetime.now(dt.UTC)
    return [lesson_info(lesson, cls, now) for lesson, cls in (await session.execute(query)).all()]


def status_counts_query(lesson: Lesson) -> Select[FrameStatus, str | None, int]:
    """Frames of the lesson per status and failure reason, from its own day partitions."""
    return (
        select(Frame.status, Frame.failure_reason, func.count())
        .where(
            Frame.lesson_id == lesson.id,
            partitions.within_lesson(Frame.captured_at, lesson.starts_at, lesson.ends_at),
        )
        .group_by(Frame.status, Frame.failure_reason)
    )


async def frame_status_counts(
    session: AsyncSession, lesson: Lesson
) -> tuple[dict[str, int], dict[str, int]]:
    """Frames per status, and failed frames per reason."""
    by_status = {status.value: 0 for status in FrameStatus}
    by_reason: dict[str, int] = {}
    for status, reason, count in (await session.execute(status_counts_query(lesson))).all():
        by_status[FrameStatus(status).value] += count
        if status is FrameStatus.FAILED:
            key = "unknown" if reason is None else reason
            by_reason[key] = by_reason.get(key, 0) + count
    return by_status, by_reason
