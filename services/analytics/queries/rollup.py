"""Reading the per-minute rollup (``face_event_minutes``) instead of raw events.

The rollup holds one row per lesson, student and whole UTC minute, kept by
triggers on ``face_events``. A window is answered from rollup rows for its whole
minutes and from raw events for the partial minutes at either end, so any
window gives the same counts as the raw events.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from sqlalchemy import SelectBase, and_, bindparam, func, or_, select, union_all

from services.analytics.queries.aggregate import (
    LABEL_COLUMNS,
    LESSON,
    SHAPES_KEPT,
    T0,
    T1,
    TIMESTAMPTZ,
    bucket_of,
    per_student_columns,
)
from services.analytics.window import TimeWindow
from shared.db.models import FaceEvent, FaceEventMinute

#: Width of a rollup row.
MINUTE = dt.timedelta(minutes=1)
#: The rollup's counts, summed when parts are merged.
_COUNTS = (
    "frames",
    "face_frames",
    "labelled",
    *LABEL_COLUMNS,
    "posed_frames",
    "facing_frames",
    "uncertain",
)

#: Whole minutes ``(s0, s1)`` of a window.
Span = tuple[dt.datetime, dt.datetime]


def whole_minutes(start: dt.datetime, end: dt.datetime) -> Span | None:
    """``(s0, s1)``: the whole UTC minutes inside ``[start, end)``, or None if there are none."""
    start = start.astimezone(dt.UTC)
    ceil = start.replace(second=0, microsecond=0)
    if ceil < start:
        ceil += MINUTE
    floor = end.astimezone(dt.UTC).replace(second=0, microsecond=0)
    return (ceil, floor) if floor > ceil else None


def rollup_span(window: TimeWindow) -> Span | None:
    """Whole minutes of ``window`` a bucketed query may read from the rollup, if any.

    Only when every bucket is a whole number of minutes starting on a minute
    (the lesson starts on a whole minute), so that no rollup row straddles two
    buckets.
    """
    origin = window.origin.astimezone(dt.UTC)
    if window.step % 60 or origin.second or origin.microsecond:
        return None
    return whole_minutes(window.start, window.end)


#: The window's whole minutes ``[s0, s1)``, read from the rollup.
S0 = bindparam("s0", type_=TIMESTAMPTZ)
S1 = bindparam("s1", type_=TIMESTAMPTZ)


def span_params(span: Span) -> dict[str, dt.datetime]:
    """Values of ``s0`` and ``s1``."""
    return {"s0": span[0], "s1": span[1]}


def rollup_parts(*, bucketed: bool) -> SelectBase:
    """Rows per (bucket,) student from the rollup in the whole minutes ``[s0, s1)`` and
    from raw events in ``[t0, s0)`` and ``[s1, t1)``; a student may have a row in each
    part. The columns are :func:`per_student_columns`' (with ``bucket`` first)."""
    r = FaceEventMinute.__table__.alias("r")
    e = FaceEvent.__table__.alias("e")
    key_r = [bucket_of(r.c.minute).label("bucket")] if bucketed else []
    key_e = [bucket_of(e.c.captured_at).label("bucket")] if bucketed else []
    from_rollup = select(
        *key_r,
        r.c.student_id,
        r.c.frames,
        r.c.face_frames,
        r.c.labelled,
        *(r.c.label_counts[i + 1].label(name) for i, name in enumerate(LABEL_COLUMNS)),
        r.c.confidence_sum,
        r.c.posed_frames,
        r.c.facing_frames,
        r.c.uncertain,
    ).where(r.c.lesson_id == LESSON, r.c.minute >= S0, r.c.minute < S1)
    at = e.c.captured_at
    from_events = (
        select(*key_e, *per_student_columns(e))
        .where(e.c.lesson_id == LESSON, or_(and_(at >= T0, at < S0), and_(at >= S1, at < T1)))
        .group_by(*key_e, e.c.student_id)
    )
    return union_all(from_rollup, from_events)


@lru_cache(maxsize=SHAPES_KEPT)
def rollup_per_student(*, bucketed: bool, merge: bool = True) -> SelectBase:
    """One row per (bucket,) student: the parts summed. ``merge=False`` skips the
    summing when the caller knows the parts never share a key (one-minute buckets:
    a partial minute is a bucket of its own)."""
    parts = rollup_parts(bucketed=bucketed)
    if not merge:
        return parts
    x = parts.subquery("x")
    key = [x.c.bucket] if bucketed else []
    return select(
        *key,
        x.c.student_id,
        *(func.sum(x.c[name]).label(name) for name in _COUNTS),
        func.sum(x.c.confidence_sum).label("confidence_sum"),
    ).group_by(*key, x.c.student_id)
