"""Lesson picker and frame pipeline counts."""

from __future__ import annotations

from fastapi import APIRouter

from services.analytics.deps import ClassLessonDep, PrincipalDep, SessionDep
from services.analytics.errors import READ_ERRORS, error_responses
from services.analytics.queries.lessons import frame_status_counts, visible_lessons
from services.analytics.schemas import FrameStats, LessonInfo, LessonList

router = APIRouter(prefix="/v1/lessons", tags=["lessons"])


@router.get(
    "",
    summary="Lessons visible to the key, newest first",
    responses=error_responses(401, 403),
)
async def list_lessons(session: SessionDep, principal: PrincipalDep) -> LessonList:
    """Every lesson of the LMS key's organisation, or of the teacher key's class."""
    lessons = await visible_lessons(session, principal)
    return LessonList(lessons=[LessonInfo.model_validate(item) for item in lessons])


@router.get(
    "/{lesson}/frames/stats",
    summary="Frames of the lesson by status, and failures by reason",
    responses=READ_ERRORS,
)
async def frame_stats(access: ClassLessonDep, session: SessionDep) -> FrameStats:
    by_status, by_reason = await frame_status_counts(session, access.lesson)
    return FrameStats(
        lesson_id=access.lesson.id,
        accepted=sum(by_status.values()),
        by_status=by_status,
        failed_by_reason=by_reason,
    )
