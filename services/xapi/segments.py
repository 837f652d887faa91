"""A finished lesson cut at its markers, and each student's counts per segment.

Segments are the summary's (``services.analytics.queries.summary.segment_counts``)
at its default one-minute grid: a marker counts from the start of its bucket,
two markers in one bucket leave the later one naming it, and the span before
the first marker has no label. Counts come from the same per-student columns
every view uses (``services.analytics.queries.aggregate``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from services.analytics.queries.aggregate import (
    TIMESTAMPTZ,
    GroupCounts,
    events_source,
    group_columns,
    per_student_columns,
)
from services.analytics.window import bucket_end, bucket_start
from services.xapi.statements import Segment, StudentSegment
from shared.db.models import Lesson, LessonMarker, Student

#: The summary's default bucket (1 min): markers snap to this grid.
SEGMENT_GRID_SECONDS = 60


def lesson_segments(lesson: Lesson, markers: list[LessonMarker]) -> list[Segment]:
    """The lesson's segments in time order, covering its whole grid without gaps."""
    origin = lesson.starts_at.astimezone(dt.UTC)
    end = bucket_end(lesson.ends_at.astimezone(dt.UTC), origin, SEGMENT_GRID_SECONDS)
    opened: dict[dt.datetime, LessonMarker] = {}
    for marker in sorted(markers, key=lambda m: m.at):
        at = max(bucket_start(marker.at, origin, SEGMENT_GRID_SECONDS), origin)
        if at < end:
            opened[at] = marker  # the later marker of a bucket names it
    starts = sorted({origin, *opened})
    return [
        Segment(
            start,
            starts[i + 1] if i + 1 < len(starts) else end,
            opened[start].label if start in opened else None,
            opened[start].kind if start in opened else None,
        )
        for i, start in enumerate(starts)
    ]


def _student_segments_query() -> Select[Any]:
    """Per (segment, student) counts; ``bounds`` are the segments' starts, in order."""
    e = events_source(smooth=0, one_student=False)
    bounds = bindparam("bounds", type_=ARRAY(TIMESTAMPTZ))
    segment = func.width_bucket(e.c.captured_at, bounds).label("segment")
    per_student = select(segment, *per_student_columns(e)).group_by(segment, e.c.student_id)
    p = per_student.cte("per_student")
    s = Student.__table__
    return (
        select(p.c.segment, p.c.student_id, s.c.external_id, *group_columns(p))
        .join_from(p, s, s.c.id == p.c.student_id)
        .group_by(p.c.segment, p.c.student_id, s.c.external_id)
        .order_by(p.c.segment, s.c.external_id)
    )


_STUDENT_SEGMENTS = _student_segments_query()


def student_segments(session: Session, lesson: Lesson) -> list[StudentSegment]:
    """Every student's counts in every segment where they sent a frame."""
    markers = list(session.scalars(select(LessonMarker).where(LessonMarker.lesson_id == lesson.id)))
    segments = lesson_segments(lesson, markers)
    params = {
        "lesson": lesson.id,
        "t0": segments[0].start,
        "t1": segments[-1].end,
        "bounds": [segment.start for segment in segments],
    }
    rows = session.execute(_STUDENT_SEGMENTS, params).all()
    # width_bucket numbers the segments from 1.
    return [
        StudentSegment(
            uuid.UUID(str(r.student_id)),
            r.external_id,
            segments[r.segment - 1],
            GroupCounts.from_row(r),
        )
        for r in rows
    ]
