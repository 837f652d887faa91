"""Whole-lesson figures: totals, per-student summaries, markers and per-marker segments."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.queries.aggregate import (
    GROUP_COLUMNS,
    PER_STUDENT_COLUMNS,
    GroupCounts,
    events_source,
)
from services.analytics.queries.rollup import rollup_per_student, whole_minutes
from services.analytics.queries.timeline import per_student_buckets
from services.analytics.window import TimeWindow
from shared.db.models import LessonMarker
from shared.labels import NUM_CLASSES


def _params(lesson_id: uuid.UUID, window: TimeWindow) -> dict[str, Any]:
    return {"lesson": lesson_id, "t0": window.start, "t1": window.end}


def _per_student(params: dict[str, Any], window: TimeWindow, smooth: int) -> str:
    """Per-student counts over the window: from the rollup where it can answer."""
    span = whole_minutes(window.start, window.end) if smooth <= 1 else None
    if span is not None:
        params["s0"], params["s1"] = span
        return rollup_per_student(bucketed=False)
    return f"""
  SELECT {PER_STUDENT_COLUMNS}
  FROM {events_source(smooth=smooth, one_student=False)} e GROUP BY e.student_id"""


#: Per (bucket, student) rows of the buckets a class view shows, from ``per_student``
#: (the timeline's rows) and the group size ``:k``: a bucket with fewer than k students
#: seen is left out; its expression counts count only with k students labelled, its
#: facing counts only with k students whose face had a head pose.
_SHOWN = """
per_bucket AS (
  SELECT p.bucket, count(*) AS seen, count(*) FILTER (WHERE p.labelled > 0) AS labelled,
         count(*) FILTER (WHERE p.posed_frames > 0) AS posed
  FROM per_student p GROUP BY p.bucket
), shown AS (
  SELECT p.*, b.labelled >= :k AS with_shares, b.posed >= :k AS with_facing
  FROM per_student p JOIN per_bucket b ON b.bucket = p.bucket
  WHERE b.seen >= :k
)"""
_WITH_SHARES = "coalesce(sum(x.{c}) FILTER (WHERE x.with_shares), 0) AS {c}"
_WITH_FACING = "coalesce(sum(x.{c}) FILTER (WHERE x.with_facing), 0) AS {c}"
#: A student's counts summed over the shown buckets ``x`` of a group.
_SHOWN_SUMS = ", ".join(
    [
        "sum(x.frames) AS frames",
        "sum(x.face_frames) AS face_frames",
        *(_WITH_SHARES.format(c=c) for c in ("labelled", *(f"l{i}" for i in range(NUM_CLASSES)))),
        _WITH_SHARES.format(c="confidence_sum"),
        _WITH_SHARES.format(c="uncertain"),
        _WITH_FACING.format(c="posed_frames"),
        _WITH_FACING.format(c="facing_frames"),
    ]
)


def _shown_params(
    lesson_id: uuid.UUID, window: TimeWindow, min_group_size: int | None, smooth: int
) -> tuple[str, dict[str, Any]]:
    per_student, params = per_student_buckets(lesson_id, window, smooth=smooth)
    return per_student, params | {"k": min_group_size or 0}


async def lesson_totals(
    session: AsyncSession,
    lesson_id: uuid.UUID,
    window: TimeWindow,
    *,
    min_group_size: int | None = None,
    smooth: int = 0,
) -> GroupCounts:
    """Counts over the window: the sum of the buckets the class timeline of the same grid
    shows (with ``min_group_size``), so that a total growing by a bucket, or differing
    from the shown buckets' sum, never exposes a group the timeline suppresses."""
    if window.bucket_count == 0:
        return GroupCounts(0, 0, 0, 0, 0, (0,) * NUM_CLASSES, 0.0)
    per_student, params = _shown_params(lesson_id, window, min_group_size, smooth)
    sql = f"""
WITH per_student AS ({per_student}), {_SHOWN}, students AS (
  SELECT x.student_id, {_SHOWN_SUMS} FROM shown x GROUP BY x.student_id
)
SELECT {GROUP_COLUMNS} FROM students p"""
    row = (await session.execute(text(sql), params)).one()
    return GroupCounts.from_row(row)


async def student_totals(
    session: AsyncSession, lesson_id: uuid.UUID, window: TimeWindow, *, smooth: int = 0
) -> list[tuple[uuid.UUID, str, GroupCounts]]:
    """Counts per student seen in the window: (student id, LMS id, counts), by LMS id."""
    params = _params(lesson_id, window)
    sql = f"""
WITH per_student AS ({_per_student(params, window, smooth)})
SELECT p.student_id, s.external_id, {GROUP_COLUMNS}
FROM per_student p JOIN students s ON s.id = p.student_id
GROUP BY p.student_id, s.external_id
ORDER BY s.external_id"""
    rows = (await session.execute(text(sql), params)).all()
    return [(r.student_id, r.external_id, GroupCounts.from_row(r)) for r in rows]


async def lesson_markers(session: AsyncSession, lesson_id: uuid.UUID) -> list[LessonMarker]:
    """The lesson's markers in time order."""
    rows = await session.scalars(
        select(LessonMarker).where(LessonMarker.lesson_id == lesson_id).order_by(LessonMarker.at)
    )
    return list(rows)


#: A marker's time moved back to the start of its bucket on the window's grid, so that
#: segments are made of whole buckets: a marker placed a frame away from another time
#: cannot cut a single frame out of a segment.
_SNAPPED_AT = "date_bin(CAST(:step AS interval), {at}, CAST(:origin AS timestamptz))"
_SPANS = f"""
snapped AS (
  SELECT m.label, m.kind, {_SNAPPED_AT.format(at="m.at")} AS at, m.at AS marked_at
  FROM lesson_markers m WHERE m.lesson_id = :lesson
), spans AS (
  SELECT m.label, m.kind, greatest(m.at, CAST(:t0 AS timestamptz)) AS span_start,
         least(coalesce(lead(m.at) OVER (ORDER BY m.at, m.marked_at), CAST(:t1 AS timestamptz)),
               CAST(:t1 AS timestamptz)) AS span_end
  FROM snapped m
  UNION ALL
  SELECT NULL, NULL, CAST(:t0 AS timestamptz),
         least(coalesce((SELECT min(at) FROM snapped), CAST(:t1 AS timestamptz)),
               CAST(:t1 AS timestamptz))
)"""


async def segment_counts(
    session: AsyncSession,
    lesson_id: uuid.UUID,
    window: TimeWindow,
    *,
    min_group_size: int | None = None,
    smooth: int = 0,
) -> list[tuple[str | None, str | None, dt.datetime, dt.datetime, GroupCounts]]:
    """Counts between consecutive markers: (label, kind, start, end, counts).

    The span before the first marker has no label; the last one runs to the
    window's end. Markers count from the start of their bucket on the window's grid
    (two in one bucket: the later one names it), and a segment sums the buckets the
    class timeline of that grid shows (see :func:`lesson_totals`).
    """
    per_student, params = _shown_params(lesson_id, window, min_group_size, smooth)
    sql = f"""
WITH {_SPANS}, per_student AS ({per_student}), {_SHOWN}, students AS (
  SELECT s.span_start, x.student_id, {_SHOWN_SUMS}
  FROM shown x JOIN spans s
    ON s.span_end > s.span_start AND x.bucket < s.span_end
   AND x.bucket + CAST(:step AS interval) > s.span_start
  GROUP BY s.span_start, x.student_id
)
SELECT s.label, s.kind, s.span_start, s.span_end, {GROUP_COLUMNS}
FROM spans s LEFT JOIN students p ON p.span_start = s.span_start
WHERE s.span_end > s.span_start
GROUP BY s.label, s.kind, s.span_start, s.span_end
ORDER BY s.span_start"""
    rows = (await session.execute(text(sql), params)).all()
    return [(r.label, r.kind, r.span_start, r.span_end, GroupCounts.from_row(r)) for r in rows]
