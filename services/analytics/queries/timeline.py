"""Class and student timelines: a dense series of buckets from ``date_bin`` in PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.queries.aggregate import (
    GROUP_COLUMNS,
    PER_STUDENT_COLUMNS,
    GroupCounts,
    events_source,
)
from services.analytics.queries.rollup import rollup_per_student, rollup_span
from services.analytics.window import TimeWindow
from shared.labels import LABELS


def _per_student_sql(*, smooth: int, one_student: bool, rollup: bool, step: int) -> str:
    if rollup:
        return rollup_per_student(bucketed=True, merge=step != 60)
    return f"""
  SELECT date_bin(:step, e.captured_at, :origin) AS bucket, {PER_STUDENT_COLUMNS}
  FROM {events_source(smooth=smooth, one_student=one_student)} e
  GROUP BY 1, e.student_id"""


def per_student_buckets(
    lesson_id: uuid.UUID,
    window: TimeWindow,
    *,
    smooth: int = 0,
    student_id: uuid.UUID | None = None,
    use_rollup: bool = True,
) -> tuple[str, dict[str, Any]]:
    """SQL of one row per (``bucket``, student) with the per-student counts, and its
    parameters: from the per-minute rollup where the buckets allow it."""
    params = _params(lesson_id, window)
    if student_id is not None:
        params["student"] = student_id
    span = rollup_span(window) if use_rollup and student_id is None and smooth <= 1 else None
    if span is not None:
        params["s0"], params["s1"] = span
    sql = _per_student_sql(
        smooth=smooth,
        one_student=student_id is not None,
        rollup=span is not None,
        step=window.step,
    )
    return sql, params


def _timeline_sql(per_student: str) -> str:
    # generate_series makes empty buckets explicit, so charts show gaps, not joins.
    return f"""
WITH per_student AS ({per_student}
), per_bucket AS (
  SELECT p.bucket, {GROUP_COLUMNS}
  FROM per_student p GROUP BY p.bucket
)
SELECT g.bucket AS start, b.*
FROM generate_series(date_bin(:step, CAST(:t0 AS timestamptz), :origin),
                     CAST(:t1 AS timestamptz) - interval '1 microsecond', :step) AS g(bucket)
LEFT JOIN per_bucket b ON b.bucket = g.bucket
ORDER BY g.bucket"""


def _params(lesson_id: uuid.UUID, window: TimeWindow) -> dict[str, Any]:
    return {
        "lesson": lesson_id,
        "t0": window.start,
        "t1": window.end,
        "origin": window.origin,
        "step": window.interval,
    }


async def bucket_counts(
    session: AsyncSession,
    lesson_id: uuid.UUID,
    window: TimeWindow,
    *,
    smooth: int = 0,
    student_id: uuid.UUID | None = None,
    use_rollup: bool = True,
) -> list[tuple[dt.datetime, GroupCounts]]:
    """Counts per bucket of the window (every bucket, empty ones included).

    Class timelines without smoothing read the per-minute rollup where the
    buckets allow it (``use_rollup=False`` forces raw events, for comparison).
    """
    if window.bucket_count == 0:
        return []
    per_student, params = per_student_buckets(
        lesson_id, window, smooth=smooth, student_id=student_id, use_rollup=use_rollup
    )
    rows = (await session.execute(text(_timeline_sql(per_student)), params)).all()
    return [(row.start, GroupCounts.from_row(row)) for row in rows]


async def timeline_buckets(
    session: AsyncSession,
    lesson_id: uuid.UUID,
    window: TimeWindow,
    *,
    min_group_size: int | None,
    smooth: int = 0,
    student_id: uuid.UUID | None = None,
    use_rollup: bool = True,
) -> list[dict[str, Any]]:
    """Bucket dicts (``start`` plus the shares) as the API returns them."""
    counts = await bucket_counts(
        session, lesson_id, window, smooth=smooth, student_id=student_id, use_rollup=use_rollup
    )
    return [{"start": start, **c.stats(min_group_size)} for start, c in counts]


_POINTS_SQL = """
SELECT e.captured_at, e.label, e.confidence
FROM face_events e
WHERE e.lesson_id = :lesson AND e.student_id = :student
  AND e.captured_at >= :t0 AND e.captured_at < :t1 AND e.label IS NOT NULL
ORDER BY e.captured_at, e.face_index"""


async def labelled_points(
    session: AsyncSession, lesson_id: uuid.UUID, student_id: uuid.UUID, window: TimeWindow
) -> list[dict[str, Any]]:
    """A student's raw labelled faces in the window, in time order."""
    rows = await session.execute(
        text(_POINTS_SQL),
        {"lesson": lesson_id, "student": student_id, "t0": window.start, "t1": window.end},
    )
    return [
        {"captured_at": r.captured_at, "label": LABELS[r.label], "confidence": r.confidence}
        for r in rows
    ]
