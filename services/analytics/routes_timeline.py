"""Class and student timelines of displayed expressions."""

from __future__ import annotations

from fastapi import APIRouter

from services.analytics.deps import (
    ClassLessonDep,
    ResourcesDep,
    SessionDep,
    StudentLessonDep,
)
from services.analytics.errors import READ_ERRORS
from services.analytics.params import BucketQuery, FromQuery, SmoothQuery, ToQuery
from services.analytics.queries.timeline import labelled_points, timeline_buckets
from services.analytics.schemas import StudentTimeline, Timeline
from services.analytics.window import Bucket, class_window, lesson_window
from shared.db.models import Student

router = APIRouter(prefix="/v1/lessons", tags=["timelines"])


@router.get(
    "/{lesson}/timeline",
    summary="Class timeline: displayed expressions per time bucket",
    responses=READ_ERRORS,
)
async def class_timeline(
    access: ClassLessonDep,
    session: SessionDep,
    resources: ResourcesDep,
    bucket: BucketQuery = Bucket.M1,
    start: FromQuery = None,
    end: ToQuery = None,
    smooth: SmoothQuery = 0,
) -> Timeline:
    """Per bucket: students seen, frames, face presence, the share of faces facing the
    screen (head direction from the detector's keypoints; not attention), the share of
    each displayed expression among labelled faces, the dominant one and the mean
    confidence.

    Buckets start at the lesson start plus a multiple of the bucket width, and the
    window covers whole buckets only: `from` and `to` are widened to the edges of
    their buckets, and the bucket still open is left out until it closes. A bucket
    where fewer students than the minimum group size were seen is ``suppressed``
    and carries no figures; expression shares also need that many students with a
    labelled face, and the facing share that many with a head pose.
    """
    window = class_window(access.lesson, bucket.seconds, start, end)
    k = resources.settings.min_group_size
    buckets = await timeline_buckets(
        session, access.lesson.id, window, min_group_size=k, smooth=smooth
    )
    return Timeline.model_validate(
        {
            "lesson_id": access.lesson.id,
            "bucket": bucket.value,
            "bucket_seconds": bucket.seconds,
            "start": window.start,
            "end": window.end,
            "min_group_size": k,
            "smooth": smooth,
            "buckets": buckets,
        }
    )


@router.get(
    "/{lesson}/students/{student}/timeline",
    summary="One student's timeline (a key with the per-student permission, or the "
    "student's own token)",
    responses=READ_ERRORS,
)
async def student_timeline(
    access: StudentLessonDep,
    session: SessionDep,
    bucket: BucketQuery = Bucket.M1,
    start: FromQuery = None,
    end: ToQuery = None,
    smooth: SmoothQuery = 0,
) -> StudentTimeline:
    """The class timeline's figures for one student (never suppressed), plus every
    labelled face as a raw point. ``student`` is the student's LMS id (or UUID).

    Per-student data: a key needs the per-student permission (the LMS grants it when
    it creates a teacher key; 403 without it); a student's own token may always read
    its own timeline."""
    student = access.student_id
    window = lesson_window(access.lesson, bucket.seconds, start, end)
    row = await session.get(Student, student)
    assert row is not None  # checked by the access dependency
    buckets = await timeline_buckets(
        session, access.lesson.id, window, min_group_size=None, smooth=smooth, student_id=student
    )
    points = await labelled_points(session, access.lesson.id, student, window)
    return StudentTimeline.model_validate(
        {
            "lesson_id": access.lesson.id,
            "student_id": student,
            "external_id": row.external_id,
            "bucket": bucket.value,
            "bucket_seconds": bucket.seconds,
            "start": window.start,
            "end": window.end,
            "min_group_size": None,
            "smooth": smooth,
            "buckets": buckets,
            "points": points,
        }
    )
