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

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from services.analytics.queries.aggregate import (
    GROUP_COLUMNS,
    PER_STUDENT_COLUMNS,
    GroupCounts,
    events_source,
)
from services.analytics.window import bucket_end, bucket_start
from services.xapi.statements import Segment, StudentSegment
from shared.db.models import Lesson, LessonMarker

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


def student_segments(session: Session, lesson: Lesson) -> list[StudentSegment]:
    """Every student's counts in every segment where they sent a frame."""
    markers = list(session.scalars(select(LessonMarker).where(LessonMarker.lesson_id == lesson.id)))
    segments = lesson_segments(lesson, markers)
    sql = f"""
WITH per_student AS (
  SELECT width_bucket(e.captured_at, CAST(:bounds AS timestamptz[])) AS segment,
         {PER_STUDENT_COLUMNS}
  FROM {events_source(smooth=0, one_student=False)} e
  GROUP BY 1, e.student_id
)
SELECT p.segment, p.student_id, s.external_id, {GROUP_COLUMNS}
FROM per_student p JOIN students s ON s.id = p.student_id
GROUP BY p.segment, p.student_id, s.external_id
ORDER BY p.segment, s.external_id"""
    params = {
        "lesson": lesson.id,
        "t0": segments[0].start,
        "t1": segments[-1].end,
        "bounds": [segment.start for segment in segments],
    }
    rows = session.execute(text(sql), params).all()
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
