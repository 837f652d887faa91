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
from services.analytics.queries.rollup import (
    MINUTE_SQL,
    ROLLUP_LABELS,
    SUMMED,
    rollup_per_student,
    whole_minutes,
)
from services.analytics.window import TimeWindow
from shared.db.models import LessonMarker


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


async def lesson_totals(
    session: AsyncSession, lesson_id: uuid.UUID, window: TimeWindow, *, smooth: int = 0
) -> GroupCounts:
    """Counts over the whole window."""
    params = _params(lesson_id, window)
    sql = f"""
WITH per_student AS ({_per_student(params, window, smooth)})
SELECT {GROUP_COLUMNS} FROM per_student p"""
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

#: Each span's whole UTC minutes ``[m0, m1)`` (empty when it has none).
_SPAN_MINUTES = f"""
minutes AS (
  SELECT s.span_start, s.span_end,
         {MINUTE_SQL.format(t="s.span_start - interval '1 microsecond'")}
           + interval '1 minute' AS m0,
         {MINUTE_SQL.format(t="s.span_end")} AS m1
  FROM spans s WHERE s.span_end > s.span_start
), bounds AS (
  SELECT span_start, span_end,
         CASE WHEN m1 > m0 THEN m0 ELSE span_end END AS m0,
         CASE WHEN m1 > m0 THEN m1 ELSE span_end END AS m1
  FROM minutes
)"""

_ROLLUP_SEGMENTS = f"""
{_SPAN_MINUTES}, parts AS (
  SELECT b.span_start, r.student_id, r.frames, r.face_frames, r.labelled, {ROLLUP_LABELS},
         r.confidence_sum
  FROM bounds b JOIN face_event_minutes r
    ON r.lesson_id = :lesson AND r.minute >= b.m0 AND r.minute < b.m1
  UNION ALL
  SELECT b.span_start, {PER_STUDENT_COLUMNS}
  FROM bounds b JOIN face_events e
    ON e.lesson_id = :lesson
   AND ((e.captured_at >= b.span_start AND e.captured_at < b.m0)
     OR (e.captured_at >= b.m1 AND e.captured_at < b.span_end))
  GROUP BY b.span_start, e.student_id
), per_student AS (
  SELECT x.span_start, x.student_id, {SUMMED}, sum(x.confidence_sum) AS confidence_sum
  FROM parts x GROUP BY x.span_start, x.student_id
)"""


def _raw_segments(smooth: int) -> str:
    return f"""
per_student AS (
  SELECT s.span_start, {PER_STUDENT_COLUMNS}
  FROM spans s JOIN {events_source(smooth=smooth, one_student=False)} e
    ON e.captured_at >= s.span_start AND e.captured_at < s.span_end
  GROUP BY s.span_start, e.student_id
)"""


async def segment_counts(
    session: AsyncSession, lesson_id: uuid.UUID, window: TimeWindow, *, smooth: int = 0
) -> list[tuple[str | None, str | None, dt.datetime, dt.datetime, GroupCounts]]:
    """Counts between consecutive markers: (label, kind, start, end, counts).

    The span before the first marker has no label; the last one runs to the
    window's end. Markers count from the start of their bucket on the window's grid
    (two in one bucket: the later one names it). Whole minutes come from the
    per-minute rollup (unless smoothing).
    """
    per_student = _ROLLUP_SEGMENTS if smooth <= 1 else _raw_segments(smooth)
    sql = f"""
WITH {_SPANS}, {per_student}
SELECT s.label, s.kind, s.span_start, s.span_end, {GROUP_COLUMNS}
FROM spans s LEFT JOIN per_student p ON p.span_start = s.span_start
WHERE s.span_end > s.span_start
GROUP BY s.label, s.kind, s.span_start, s.span_end
ORDER BY s.span_start"""
    params = _params(lesson_id, window) | {"step": window.interval, "origin": window.origin}
    rows = (await session.execute(text(sql), params)).all()
    return [(r.label, r.kind, r.span_start, r.span_end, GroupCounts.from_row(r)) for r in rows]
