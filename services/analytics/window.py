"""Time buckets and query windows: UTC in, ISO 8601 out, buckets aligned to the lesson start.

Class-level views (timeline, summary, exports, live) read whole, closed buckets of
the lesson's grid only (:func:`class_window`): two windows a frame apart give the
same buckets, so that subtracting one answer from another cannot single out a
frame, and the bucket still filling is shown once it has closed.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from enum import StrEnum

from services.analytics.errors import InvalidQuery
from shared.db.models import Lesson

#: A window wider than this many buckets is refused (ask for a larger bucket).
MAX_BUCKETS = 5000


class Bucket(StrEnum):
    """Bucket widths offered by the API."""

    S10 = "10s"
    S30 = "30s"
    M1 = "1m"
    M5 = "5m"

    @property
    def seconds(self) -> int:
        return {"10s": 10, "30s": 30, "1m": 60, "5m": 300}[self.value]


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Events with ``start <= captured_at < end``, grouped in ``step``-second buckets.

    Bucket boundaries are ``origin + k * step`` (``origin`` is the lesson start), so a
    bucket means the same span whatever ``from`` a client asks for.
    """

    start: dt.datetime
    end: dt.datetime
    origin: dt.datetime
    step: int

    @property
    def interval(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.step)

    def bucket_of(self, at: dt.datetime) -> dt.datetime:
        return bucket_start(at, self.origin, self.step)

    @property
    def bucket_count(self) -> int:
        if self.end <= self.start:
            return 0
        first = self.bucket_of(self.start)
        return math.ceil((self.end - first).total_seconds() / self.step)


#: Times a query may name. Outside, bucket arithmetic would leave Python's date
#: range (year 1 to 9999) and fail instead of answering.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)


def bucket_start(at: dt.datetime, origin: dt.datetime, step: int) -> dt.datetime:
    """Start of the ``step``-second bucket holding ``at`` (the arithmetic of SQL ``date_bin``).

    Defined for every aware time: one outside ``EARLIEST``..``LATEST`` counts as
    that range's nearest end, so that a bucket never starts outside Python's
    date range (the bucket of 0001-01-01T00:00:01Z would start before year 1).
    """
    at = min(max(at, EARLIEST), LATEST)
    offset = (at - origin) // dt.timedelta(seconds=step)
    return origin + offset * dt.timedelta(seconds=step)


def bucket_end(at: dt.datetime, origin: dt.datetime, step: int) -> dt.datetime:
    """The first bucket boundary at or after ``at`` (``at`` itself when it is one)."""
    start = bucket_start(at, origin, step)
    return start if start == at else start + dt.timedelta(seconds=step)


def lesson_bucket(at: dt.datetime, lesson: Lesson, step: int) -> dt.datetime | None:
    """The bucket of ``at`` on the lesson's grid; None when ``at`` lies outside the lesson.

    Views of a lesson show its buckets only. A time far from it (from a frame
    stored before ingest checked capture times) would otherwise stretch a window
    over centuries of empty buckets.
    """
    if not lesson.starts_at <= at <= lesson.ends_at:
        return None
    return bucket_start(at, lesson.starts_at.astimezone(dt.UTC), step)


def to_utc(value: dt.datetime, field: str = "from") -> dt.datetime:
    """An aware time in UTC within the supported range; naive times are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidQuery("times need a UTC offset, e.g. 2024-05-01T09:00:00Z", field=field)
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:
        utc = EARLIEST - dt.timedelta(days=1)
    if not EARLIEST <= utc < LATEST:
        raise InvalidQuery(
            f"times must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}", field=field
        )
    return utc


def lesson_window(
    lesson: Lesson,
    step: int,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> TimeWindow:
    """The window a query covers: by default the lesson so far (to its end once over)."""
    now = now or dt.datetime.now(dt.UTC)
    origin = lesson.starts_at.astimezone(dt.UTC)
    begin = to_utc(start) if start is not None else origin
    finish = to_utc(end, "to") if end is not None else min(lesson.ends_at.astimezone(dt.UTC), now)
    if start is not None and end is not None and finish <= begin:
        raise InvalidQuery("'to' must be after 'from'", field="to")
    window = TimeWindow(begin, max(finish, begin), origin, step)
    if window.bucket_count > MAX_BUCKETS:
        raise InvalidQuery(
            f"the window holds {window.bucket_count} buckets (at most {MAX_BUCKETS}); "
            "use a larger bucket or a shorter window",
            field="bucket",
        )
    return window


def class_window(
    lesson: Lesson,
    step: int,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> TimeWindow:
    """The window of a class-level view: whole buckets of the lesson's grid, closed ones only.

    ``from`` moves back to the start of its bucket and ``to`` on to the end of its
    bucket, so a class view always covers whole buckets whatever times are asked
    for; and the window ends where the open bucket (the one holding ``now``)
    starts, so a bucket is shown once, when it has closed, not frame by frame.
    """
    now = now or dt.datetime.now(dt.UTC)
    asked = lesson_window(lesson, step, start, end, now)
    origin = asked.origin
    begin = bucket_start(asked.start, origin, step)
    finish = min(bucket_end(asked.end, origin, step), bucket_start(now, origin, step))
    window = TimeWindow(begin, max(finish, begin), origin, step)
    if window.bucket_count > MAX_BUCKETS:  # rounding out may add a bucket at each end
        raise InvalidQuery(
            f"the window holds {window.bucket_count} buckets (at most {MAX_BUCKETS}); "
            "use a larger bucket or a shorter window",
            field="bucket",
        )
    return window
