"""Whole-lesson figures: totals, per-student summaries, markers and per-marker segments."""

from __future__ import annotations

import datetime as dt
import uuid
from functools import lru_cache
from typing import Any

from sqlalchemy import CTE, ColumnElement, Select, SelectBase, and_, func, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.queries.aggregate import (
    LABEL_COLUMNS,
    LESSON,
    SHAPES_KEPT,
    STEP,
    T0,
    T1,
    TIMESTAMPTZ,
    GroupCounts,
    K,
    bucket_of,
    events_source,
    group_columns,
    per_student_columns,
    window_params,
)
from services.analytics.queries.rollup import rollup_per_student, span_params, whole_minutes
from services.analytics.queries.timeline import per_student_buckets
from services.analytics.window import TimeWindow
from shared.db.models import LessonMarker, Student
from shared.labels import NUM_CLASSES


def _per_student(
    lesson_id: uuid.UUID, window: TimeWindow, smooth: int
) -> tuple[SelectBase, dict[str, Any]]:
    """Per-student counts over the window, and its parameter values: from the rollup
    where it can answer."""
    params = window_params(lesson_id, window)
    span = whole_minutes(window.start, window.end) if smooth <= 1 else None
    if span is not None:
        return rollup_per_student(bucketed=False), params | span_params(span)
    return _student_counts(smooth=smooth), params


@lru_cache(maxsize=SHAPES_KEPT)
def _student_counts(*, smooth: int) -> SelectBase:
    e = events_source(smooth=smooth, one_student=False)
    return select(*per_student_columns(e)).group_by(e.c.student_id)


def _shown(per_student: SelectBase) -> CTE:
    """Per (bucket, student) rows of the buckets the class timeline shows (``per_student``
    is the timeline's), with the group size ``k``: a bucket with fewer than k students
    seen is left out; its expression counts count only with k students labelled
    (``with_shares``), its facing counts only with k students whose face had a head
    pose (``with_facing``)."""
    p = per_student.cte("per_student")
    b = (
        select(
            p.c.bucket,
            func.count().label("seen"),
            func.count().filter(p.c.labelled > 0).label("labelled"),
            func.count().filter(p.c.posed_frames > 0).label("posed"),
        )
        .group_by(p.c.bucket)
        .cte("per_bucket")
    )
    return (
        select(p, (b.c.labelled >= K).label("with_shares"), (b.c.posed >= K).label("with_facing"))
        .join_from(p, b, b.c.bucket == p.c.bucket)
        .where(b.c.seen >= K)
        .cte("shown")
    )


def _shown_sums(x: CTE) -> list[ColumnElement[Any]]:
    """A student's counts summed over the shown buckets ``x`` of a group."""

    def where(flag: ColumnElement[bool], name: str) -> ColumnElement[Any]:
        return func.coalesce(func.sum(x.c[name]).filter(flag), 0).label(name)

    return [
        func.sum(x.c.frames).label("frames"),
        func.sum(x.c.face_frames).label("face_frames"),
        *(
            where(x.c.with_shares, name)
            for name in ("labelled", *LABEL_COLUMNS, "confidence_sum", "uncertain")
        ),
        where(x.c.with_facing, "posed_frames"),
        where(x.c.with_facing, "facing_frames"),
    ]


def _shown_params(
    lesson_id: uuid.UUID, window: TimeWindow, min_group_size: int | None, smooth: int
) -> tuple[SelectBase, dict[str, Any]]:
    per_student, params = per_student_buckets(lesson_id, window, smooth=smooth)
    return per_student, params | {"k": min_group_size or 0}


@lru_cache(maxsize=SHAPES_KEPT)
def _totals_query(per_student: SelectBase) -> Select[Any]:
    x = _shown(per_student)
    students = select(x.c.student_id, *_shown_sums(x)).group_by(x.c.student_id).cte("students")
    return select(*group_columns(students))


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
    row = (await session.execute(_totals_query(per_student), params)).one()
    return GroupCounts.from_row(row)


async def student_totals(
    session: AsyncSession, lesson_id: uuid.UUID, window: TimeWindow, *, smooth: int = 0
) -> list[tuple[uuid.UUID, str, GroupCounts]]:
    """Counts per student seen in the window: (student id, LMS id, counts), by LMS id."""
    per_student, params = _per_student(lesson_id, window, smooth)
    rows = (await session.execute(_students_query(per_student), params)).all()
    return [(r.student_id, r.external_id, GroupCounts.from_row(r)) for r in rows]


@lru_cache(maxsize=SHAPES_KEPT)
def _students_query(per_student: SelectBase) -> Select[Any]:
    p = per_student.cte("per_student")
    s = Student.__table__
    return (
        select(p.c.student_id, s.c.external_id, *group_columns(p))
        .join_from(p, s, s.c.id == p.c.student_id)
        .group_by(p.c.student_id, s.c.external_id)
        .order_by(s.c.external_id)
    )


async def lesson_markers(session: AsyncSession, lesson_id: uuid.UUID) -> list[LessonMarker]:
    """The lesson's markers in time order."""
    rows = await session.scalars(
        select(LessonMarker).where(LessonMarker.lesson_id == lesson_id).order_by(LessonMarker.at)
    )
    return list(rows)


def _spans() -> CTE:
    """The window ``[t0, t1)`` cut at the lesson's markers: (label, kind, span_start,
    span_end).

    A marker's time moves back to the start of its bucket on the window's grid, so that
    segments are made of whole buckets: a marker placed a frame away from another time
    cannot cut a single frame out of a segment. A span may be empty (two markers in one
    bucket, or one outside the window); callers skip those.
    """
    m = LessonMarker.__table__
    snapped = (
        select(m.c.label, m.c.kind, bucket_of(m.c.at).label("at"), m.c.at.label("marked_at"))
        .where(m.c.lesson_id == LESSON)
        .cte("snapped")
    )
    following = func.lead(snapped.c.at).over(order_by=(snapped.c.at, snapped.c.marked_at))
    marked = select(
        snapped.c.label,
        snapped.c.kind,
        func.greatest(snapped.c.at, T0, type_=TIMESTAMPTZ).label("span_start"),
        func.least(func.coalesce(following, T1), T1, type_=TIMESTAMPTZ).label("span_end"),
    )
    first_marker = select(func.min(snapped.c.at)).scalar_subquery()
    before = select(null(), null(), T0, func.least(func.coalesce(first_marker, T1), T1))
    return union_all(marked, before).cte("spans")


@lru_cache(maxsize=SHAPES_KEPT)
def _segments_query(per_student: SelectBase) -> Select[Any]:
    spans = _spans()
    s = spans.c
    x = _shown(per_student)
    students = (
        select(s.span_start, x.c.student_id, *_shown_sums(x))
        .join_from(
            x,
            spans,
            and_(
                s.span_end > s.span_start,
                x.c.bucket < s.span_end,
                x.c.bucket + STEP > s.span_start,
            ),
        )
        .group_by(s.span_start, x.c.student_id)
        .cte("students")
    )
    return (
        select(s.label, s.kind, s.span_start, s.span_end, *group_columns(students))
        .join_from(spans, students, students.c.span_start == s.span_start, isouter=True)
        .where(s.span_end > s.span_start)
        .group_by(s.label, s.kind, s.span_start, s.span_end)
        .order_by(s.span_start)
    )


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
    rows = (await session.execute(_segments_query(per_student), params)).all()
    return [(r.label, r.kind, r.span_start, r.span_end, GroupCounts.from_row(r)) for r in rows]
