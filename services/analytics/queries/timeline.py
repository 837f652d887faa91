"""Class and student timelines: a dense series of buckets from ``date_bin`` in PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, SelectBase, column, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.queries.aggregate import (
    LESSON,
    SHAPES_KEPT,
    STEP,
    STUDENT,
    T0,
    T1,
    TIMESTAMPTZ,
    GroupCounts,
    bucket_of,
    events_source,
    group_columns,
    per_student_columns,
    window_params,
)
from services.analytics.queries.rollup import rollup_per_student, rollup_span, span_params
from services.analytics.window import TimeWindow
from shared.db.models import FaceEvent
from shared.labels import LABELS

#: The last instant of a window (its end is exclusive).
_TICK = dt.timedelta(microseconds=1)


@lru_cache(maxsize=SHAPES_KEPT)
def _events_per_student(*, smooth: int, one_student: bool) -> SelectBase:
    e = events_source(smooth=smooth, one_student=one_student)
    bucket = bucket_of(e.c.captured_at).label("bucket")
    return select(bucket, *per_student_columns(e)).group_by(bucket, e.c.student_id)


def per_student_buckets(
    lesson_id: uuid.UUID,
    window: TimeWindow,
    *,
    smooth: int = 0,
    student_id: uuid.UUID | None = None,
    use_rollup: bool = True,
) -> tuple[SelectBase, dict[str, Any]]:
    """One row per (``bucket``, student) with the per-student counts, and its parameter
    values: from the per-minute rollup where the buckets allow it."""
    params = window_params(lesson_id, window)
    if student_id is not None:
        params["student"] = student_id
    span = rollup_span(window) if use_rollup and student_id is None and smooth <= 1 else None
    if span is None:
        return _events_per_student(smooth=smooth, one_student=student_id is not None), params
    # One-minute buckets: a partial minute is a bucket of its own, nothing to merge.
    per_student = rollup_per_student(bucketed=True, merge=window.step != 60)
    return per_student, params | span_params(span)


@lru_cache(maxsize=SHAPES_KEPT)
def timeline_query(per_student: SelectBase) -> Select[Any]:
    """Every bucket of the window (``start``) with the group columns of its students."""
    p = per_student.cte("per_student")
    b = select(p.c.bucket, *group_columns(p)).group_by(p.c.bucket).cte("per_bucket")
    # generate_series makes empty buckets explicit, so charts show gaps, not joins.
    g = (
        func.generate_series(bucket_of(T0), T1 - _TICK, STEP)
        .table_valued(column("bucket", TIMESTAMPTZ))
        .render_derived("g")
    )
    # All of per_bucket's columns (its bucket too): a narrower list costs a Subquery Scan.
    return (
        select(g.c.bucket.label("start"), *b.c)
        .select_from(g.outerjoin(b, b.c.bucket == g.c.bucket))
        .order_by(g.c.bucket)
    )


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
    rows = (await session.execute(timeline_query(per_student), params)).all()
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


def _points_query() -> Select[Any]:
    e = FaceEvent.__table__.alias("e")
    return (
        select(e.c.captured_at, e.c.label, e.c.confidence)
        .where(
            e.c.lesson_id == LESSON,
            e.c.student_id == STUDENT,
            e.c.captured_at >= T0,
            e.c.captured_at < T1,
            e.c.label.is_not(None),
        )
        .order_by(e.c.captured_at, e.c.face_index)
    )


_POINTS = _points_query()


async def labelled_points(
    session: AsyncSession, lesson_id: uuid.UUID, student_id: uuid.UUID, window: TimeWindow
) -> list[dict[str, Any]]:
    """A student's raw labelled faces in the window, in time order."""
    rows = await session.execute(
        _POINTS, {"lesson": lesson_id, "student": student_id, "t0": window.start, "t1": window.end}
    )
    return [
        {"captured_at": r.captured_at, "label": LABELS[r.label], "confidence": r.confidence}
        for r in rows
    ]
