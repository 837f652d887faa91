"""Reading the per-minute rollup (``face_event_minutes``) instead of raw events.

The rollup holds one row per lesson, student and whole UTC minute, kept by
triggers on ``face_events``. A window is answered from rollup rows for its whole
minutes and from raw events for the partial minutes at either end, so any
window gives the same counts as the raw events.
"""

from __future__ import annotations

import datetime as dt

from services.analytics.queries.aggregate import PER_STUDENT_COLUMNS
from services.analytics.window import TimeWindow
from shared.labels import NUM_CLASSES

#: Width of a rollup row.
MINUTE = dt.timedelta(minutes=1)
#: SQL for the start of the UTC minute holding ``{t}`` (as the rollup triggers compute it).
MINUTE_SQL = "date_bin('1 minute', {t}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
_COUNTS = (
    "frames",
    "face_frames",
    "labelled",
    *(f"l{i}" for i in range(NUM_CLASSES)),
    "posed_frames",
    "facing_frames",
    "uncertain",
)
ROLLUP_LABELS = ", ".join(f"r.label_counts[{i + 1}] AS l{i}" for i in range(NUM_CLASSES))
SUMMED = ", ".join(f"sum(x.{c}) AS {c}" for c in _COUNTS)


def whole_minutes(start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """``(s0, s1)``: the whole UTC minutes inside ``[start, end)``, or None if there are none."""
    start = start.astimezone(dt.UTC)
    ceil = start.replace(second=0, microsecond=0)
    if ceil < start:
        ceil += MINUTE
    floor = end.astimezone(dt.UTC).replace(second=0, microsecond=0)
    return (ceil, floor) if floor > ceil else None


def rollup_span(window: TimeWindow) -> tuple[dt.datetime, dt.datetime] | None:
    """Whole minutes of ``window`` a bucketed query may read from the rollup, if any.

    Only when every bucket is a whole number of minutes starting on a minute
    (the lesson starts on a whole minute), so that no rollup row straddles two
    buckets.
    """
    origin = window.origin.astimezone(dt.UTC)
    if window.step % 60 or origin.second or origin.microsecond:
        return None
    return whole_minutes(window.start, window.end)


def rollup_parts(*, bucketed: bool) -> str:
    """Rows per (bucket,) student from the rollup in ``[:s0, :s1)`` and from raw events in
    ``[:t0, :s0)`` and ``[:s1, :t1)``; a student may have a row in each part."""
    key_r = "date_bin(:step, r.minute, :origin) AS bucket, " if bucketed else ""
    key_e = "date_bin(:step, e.captured_at, :origin) AS bucket, " if bucketed else ""
    group = "1, e.student_id" if bucketed else "e.student_id"
    return f"""
    SELECT {key_r}r.student_id, r.frames, r.face_frames, r.labelled, {ROLLUP_LABELS},
           r.confidence_sum, r.posed_frames, r.facing_frames, r.uncertain
    FROM face_event_minutes r
    WHERE r.lesson_id = :lesson AND r.minute >= :s0 AND r.minute < :s1
    UNION ALL
    SELECT {key_e}{PER_STUDENT_COLUMNS}
    FROM face_events e
    WHERE e.lesson_id = :lesson AND ((e.captured_at >= :t0 AND e.captured_at < :s0)
                                  OR (e.captured_at >= :s1 AND e.captured_at < :t1))
    GROUP BY {group}"""


def rollup_per_student(*, bucketed: bool, merge: bool = True) -> str:
    """One row per (bucket,) student: the parts summed. ``merge=False`` skips the
    summing when the caller knows the parts never share a key (one-minute buckets:
    a partial minute is a bucket of its own)."""
    parts = rollup_parts(bucketed=bucketed)
    if not merge:
        return parts
    key = "x.bucket, " if bucketed else ""
    return f"""
  SELECT {key}x.student_id, {SUMMED}, sum(x.confidence_sum) AS confidence_sum
  FROM ({parts}) x
  GROUP BY {key}x.student_id"""
