"""Far-off capture times, from frames stored before ingest checked them, break no live stream.

A notice of 0001-01-01T00:00:01Z used to end every open ``/live`` stream of its
lesson (its bucket would start before year 1: OverflowError).
"""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
import redis as redis_lib
from sqlalchemy import Engine

from classpulse.harness.factories import SeededLesson, SeedEvent, insert_events
from services.analytics.window import EARLIEST, LATEST, bucket_start
from shared.labels import Expression
from shared.schemas import live_channel
from tests.analytics.conftest import bearer
from tests.analytics.test_live import notice, sse_events

UTC = dt.UTC
FAR_OFF = [
    dt.datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC),
    dt.datetime(1, 1, 1, tzinfo=UTC),
    dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    dt.datetime(2999, 1, 1, tzinfo=UTC),
]


@pytest.mark.parametrize("at", FAR_OFF, ids=str)
@pytest.mark.parametrize("step", [10, 60, 300])
def test_bucket_start_is_defined_for_any_time(at: dt.datetime, step: int) -> None:
    origin = dt.datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
    start = bucket_start(at, origin, step)
    assert EARLIEST - dt.timedelta(seconds=step) < start <= LATEST
    assert (start - origin) % dt.timedelta(seconds=step) == dt.timedelta(0)  # on the grid


def test_bucket_start_of_times_in_range_is_unchanged() -> None:
    origin = dt.datetime(2024, 5, 6, 8, 0, 7, tzinfo=UTC)
    assert bucket_start(origin + dt.timedelta(seconds=125), origin, 60) == origin + dt.timedelta(
        seconds=120
    )
    assert bucket_start(origin - dt.timedelta(seconds=1), origin, 60) == origin - dt.timedelta(
        seconds=60
    )


def test_notices_of_far_off_times_leave_the_stream_open(
    api: httpx.Client, lesson: SeededLesson, clean_db: Engine, redis_client: redis_lib.Redis
) -> None:
    url = f"/v1/lessons/{lesson.lesson_id}/live"
    channel = live_channel(lesson.lesson_id)
    with api.stream(
        "GET", url, params={"bucket": "1m"}, headers=bearer(lesson.teacher_key)
    ) as stream:
        events = sse_events(stream.iter_lines())
        assert next(events)[0] == "ready"
        for at in [*FAR_OFF, lesson.at(-86400)]:
            redis_client.publish(channel, notice(lesson, "s1", at))
        students = [f"s{i}" for i in range(1, 7)]
        insert_events(
            clean_db,
            lesson.lesson_id,
            [SeedEvent(lesson.students[s], lesson.at(125), Expression.HAPPY) for s in students],
        )
        for s in students:
            redis_client.publish(channel, notice(lesson, s, lesson.at(125)))

        kind, data = next(events)
    assert kind == "buckets"
    # Only the lesson's own bucket: nothing for the far-off times, and no window
    # stretched over centuries.
    (bucket,) = json.loads(data)
    assert bucket["start"] == "2024-05-06T08:02:00Z"
    assert bucket["students_seen"] == 6
