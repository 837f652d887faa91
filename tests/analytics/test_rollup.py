"""The per-minute rollup kept by triggers answers exactly like the raw events."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from classpulse.harness.factories import SeededLesson, SeedEvent, insert_events
from services.analytics.queries.rollup import rollup_span
from services.analytics.queries.timeline import bucket_counts
from services.analytics.window import TimeWindow
from shared.db.engine import async_session_factory

T0 = dt.datetime(2024, 5, 6, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def random_lesson(clean_db: Engine, lesson: SeededLesson) -> SeededLesson:
    """Seven students, a frame every ~5 s for 30 minutes, random labels, faces too uncertain
    for a label, and no-faces."""
    rng = random.Random(7)
    events = []
    for student in lesson.students.values():
        t = rng.uniform(0, 5)
        while t < 30 * 60:
            face = rng.random() > 0.15
            label = rng.randrange(7) if face and rng.random() > 0.1 else None
            confidence = rng.uniform(0.3, 1)
            events.append(
                SeedEvent(
                    student,
                    lesson.at(t),
                    label,
                    face=face,
                    confidence=confidence,
                    uncertain=confidence < 0.4,
                )
            )
            t += rng.uniform(3, 7)
    insert_events(clean_db, lesson.lesson_id, events)
    return lesson


async def both_ways(
    engine: AsyncEngine, lesson: SeededLesson, window: TimeWindow
) -> tuple[list, list]:
    async with async_session_factory(engine)() as session:
        fast = await bucket_counts(session, lesson.lesson_id, window)
        raw = await bucket_counts(session, lesson.lesson_id, window, use_rollup=False)
    return fast, raw


WINDOWS = [
    TimeWindow(T0, T0 + dt.timedelta(minutes=30), T0, 60),
    TimeWindow(T0, T0 + dt.timedelta(minutes=30), T0, 300),
    # Partial minutes at both ends come from raw events.
    TimeWindow(T0 + dt.timedelta(seconds=95), T0 + dt.timedelta(minutes=17, seconds=12.5), T0, 60),
    TimeWindow(
        T0 + dt.timedelta(minutes=3, seconds=1), T0 + dt.timedelta(minutes=29, seconds=59), T0, 300
    ),
]


@pytest.mark.parametrize("window", WINDOWS, ids=["1m", "5m", "1m-partial", "5m-partial"])
async def test_rollup_equals_raw_events(
    async_engine: AsyncEngine, random_lesson: SeededLesson, window: TimeWindow
) -> None:
    assert rollup_span(window) is not None
    fast, raw = await both_ways(async_engine, random_lesson, window)
    assert len(fast) == window.bucket_count
    assert [(s, c.frames, c.students_seen, c.label_counts, c.uncertain) for s, c in fast] == [
        (s, c.frames, c.students_seen, c.label_counts, c.uncertain) for s, c in raw
    ]
    assert sum(c.uncertain for _, c in fast) > 0
    assert [round(c.confidence_sum, 6) for _, c in fast] == [
        round(c.confidence_sum, 6) for _, c in raw
    ]
    assert sum(c.frames for _, c in fast) > 0


async def test_rollup_follows_erasure_and_cascades(
    async_engine: AsyncEngine, random_lesson: SeededLesson, clean_db: Engine
) -> None:
    lesson = random_lesson
    with clean_db.begin() as conn:
        # Erase one student's events, and delete another student outright (cascade).
        conn.execute(
            text("DELETE FROM face_events WHERE student_id = :s"), {"s": lesson.students["s1"]}
        )
        conn.execute(text("DELETE FROM students WHERE id = :s"), {"s": lesson.students["s2"]})
        # The retention purge: events older than minute 10.
        conn.execute(
            text("DELETE FROM face_events WHERE lesson_id = :l AND captured_at < :t"),
            {"l": lesson.lesson_id, "t": T0 + dt.timedelta(minutes=10, seconds=30)},
        )
        left = conn.execute(
            text("SELECT count(*) FROM face_event_minutes WHERE student_id IN (:a, :b)"),
            {"a": lesson.students["s1"], "b": lesson.students["s2"]},
        ).scalar_one()
    assert left == 0

    fast, raw = await both_ways(async_engine, lesson, WINDOWS[0])
    assert [(s, c.frames, c.students_seen, c.label_counts, c.uncertain) for s, c in fast] == [
        (s, c.frames, c.students_seen, c.label_counts, c.uncertain) for s, c in raw
    ]
    assert max(c.students_seen for _, c in fast) == 5
    assert all(c.frames == 0 for _, c in fast[:10])


def test_rollup_is_not_used_when_buckets_straddle_minutes() -> None:
    odd_start = T0 + dt.timedelta(seconds=7)
    assert (
        rollup_span(TimeWindow(odd_start, odd_start + dt.timedelta(hours=1), odd_start, 60)) is None
    )
    assert rollup_span(TimeWindow(T0, T0 + dt.timedelta(hours=1), T0, 30)) is None
    assert rollup_span(TimeWindow(T0, T0 + dt.timedelta(seconds=50), T0, 60)) is None


async def test_lesson_and_student_totals_from_the_rollup_match_raw_events(
    async_engine: AsyncEngine, random_lesson: SeededLesson
) -> None:
    from services.analytics.queries.summary import lesson_totals, student_totals

    window = WINDOWS[2]  # partial minutes at both ends
    async with async_session_factory(async_engine)() as session:
        totals = await lesson_totals(session, random_lesson.lesson_id, window)
        students = await student_totals(session, random_lesson.lesson_id, window)
        raw = await bucket_counts(session, random_lesson.lesson_id, window, use_rollup=False)
        s1 = random_lesson.students["s1"]
        raw_s1 = await bucket_counts(session, random_lesson.lesson_id, window, student_id=s1)

    assert totals.frames == sum(c.frames for _, c in raw)
    assert totals.label_counts == tuple(
        map(sum, zip(*(c.label_counts for _, c in raw), strict=True))
    )
    assert totals.students_seen == len(students) == 7
    (mine,) = [c for sid, _, c in students if sid == s1]
    assert mine.frames == sum(c.frames for _, c in raw_s1)
    assert mine.labelled == sum(c.labelled for _, c in raw_s1)
    assert mine.uncertain == sum(c.uncertain for _, c in raw_s1) > 0


@pytest.mark.parametrize("window", [WINDOWS[0], WINDOWS[2]], ids=["whole", "partial"])
async def test_segments_from_the_rollup_match_raw_events(
    async_engine: AsyncEngine, random_lesson: SeededLesson, clean_db: Engine, window: TimeWindow
) -> None:
    import math

    from classpulse.harness.factories import add_marker
    from services.analytics.queries.summary import segment_counts

    lesson = random_lesson
    for seconds, label in ((197.5, "Slide 2"), (600, "Slide 3"), (620, "Quiz"), (1361, "Slide 4")):
        add_marker(clean_db, lesson.lesson_id, lesson.at(seconds), label)
    async with async_session_factory(async_engine)() as session:
        segments = await segment_counts(session, lesson.lesson_id, window)
        expected = []
        for _, _, start, end, _ in segments:
            one_bucket = TimeWindow(start, end, start, math.ceil((end - start).total_seconds()))
            ((_, raw),) = await bucket_counts(
                session, lesson.lesson_id, one_bucket, use_rollup=False
            )
            expected.append((start, end, raw.frames, raw.students_seen, raw.label_counts))

    assert [
        (s, e, c.frames, c.students_seen, c.label_counts) for _, _, s, e, c in segments
    ] == expected
    assert sum(c.frames for *_, c in segments) == sum(
        c.frames for _, c in (await both_ways(async_engine, lesson, window))[1]
    )
    assert "Quiz" in [label for label, *_ in segments]
