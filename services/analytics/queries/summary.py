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


async def segment_counts(
    session: AsyncSession, lesson_id: uuid.UUID, window: TimeWindow, *, smooth: int = 0
) -> list[tuple[str | None, str | None, dt.datetime, dt.datetime, GroupCounts]]:
    """Counts between consecutive markers: (label, kind, start, end, counts).

    The span before the first marker has no label; the last one runs to the
    window's end.
    """
    sql = f"""
WITH spans AS (
  SELECT m.label, m.kind, greatest(m.at, CAST(:t0 AS timestamptz)) AS span_start,
         least(coalesce(lead(m.at) OVER (ORDER BY m.at), CAST(:t1 AS timestamptz)),
               CAST(:t1 AS timestamptz)) AS span_end
  FROM lesson_markers m WHERE m.lesson_id = :lesson
  UNION ALL
  SELECT NULL, NULL, CAST(:t0 AS timestamptz),
         least(coalesce((SELECT min(at) FROM lesson_markers WHERE lesson_id = :lesson),
                        CAST(:t1 AS timestamptz)), CAST(:t1 AS timestamptz))
), per_student AS (
  SELECT s.span_start, {PER_STUDENT_COLUMNS}
  FROM spans s JOIN {events_source(smooth=smooth, one_student=False)} e
    ON e.captured_at >= s.span_start AND e.captured_at < s.span_end
  GROUP BY s.span_start, e.student_id
)
SELECT s.label, s.kind, s.span_start, s.span_end, {GROUP_COLUMNS}
FROM spans s LEFT JOIN per_student p ON p.span_start = s.span_start
WHERE s.span_end > s.span_start
GROUP BY s.label, s.kind, s.span_start, s.span_end
ORDER BY s.span_start"""
    rows = (await session.execute(text(sql), _params(lesson_id, window))).all()
    return [(r.label, r.kind, r.span_start, r.span_end, GroupCounts.from_row(r)) for r in rows]
