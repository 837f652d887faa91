"""Analytics query speed on a 90-minute lesson of 500 students at one frame per 5 s.

Seeds 540,000 face events in a throwaway database on the real PostgreSQL
(generated in SQL), then times the class timeline at 1-minute buckets and one
student's timeline through the API's own query functions (asyncpg, as served),
reporting medians over repeated runs and the plan PostgreSQL chose. Usage:

    python -m bench.analytics_queries [--server postgresql://postgres@127.0.0.1:5432/postgres]
                                      [--students 500] [--minutes 90] [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from bench.analytics_seed import (
    SeededLesson,
    SeedEvent,
    add_marker,
    generate_events,
    insert_events,
    seed_lesson,
)
from services.analytics.queries.summary import lesson_totals, segment_counts, student_totals
from services.analytics.queries.timeline import (
    _timeline_sql,
    labelled_points,
    per_student_buckets,
    timeline_buckets,
)
from services.analytics.window import TimeWindow
from shared.db.engine import async_session_factory, make_async_engine, make_sync_engine
from shared.db.migrate import upgrade

CLASS_TARGET_MS = 150
STUDENT_TARGET_MS = 30


def create_database(server: str) -> str:
    """A fresh, migrated database on ``server``; returns its URL."""
    name = f"classpulse_bench_{uuid.uuid4().hex[:8]}"
    admin = make_sync_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    return url


def drop_database(server: str, url: str) -> None:
    admin = make_sync_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


async def median_ms(run: Callable[[], Awaitable[object]], runs: int) -> tuple[float, float]:
    """Median and worst wall time of ``runs`` calls (after one warm-up call)."""
    await run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


async def measure(
    url: str,
    lesson_id: uuid.UUID,
    student_id: uuid.UUID,
    start: dt.datetime,
    minutes: int,
    runs: int,
) -> None:
    engine = make_async_engine(url)
    sessions = async_session_factory(engine)
    window = TimeWindow(start, start + dt.timedelta(minutes=minutes), start, 60)

    async def class_timeline() -> object:
        async with sessions() as session:
            return await timeline_buckets(session, lesson_id, window, min_group_size=5)

    async def student_timeline() -> object:
        async with sessions() as session:
            buckets = await timeline_buckets(
                session, lesson_id, window, min_group_size=None, student_id=student_id
            )
            return buckets, await labelled_points(session, lesson_id, student_id, window)

    async def summary_queries() -> object:
        # What GET /summary runs: timeline (for moments), totals, students, segments.
        async with sessions() as session:
            return (
                await timeline_buckets(session, lesson_id, window, min_group_size=5),
                await lesson_totals(session, lesson_id, window, min_group_size=5),
                await student_totals(session, lesson_id, window),
                await segment_counts(session, lesson_id, window, min_group_size=5),
            )

    async def raw_class_timeline() -> object:
        async with sessions() as session:
            return await timeline_buckets(
                session, lesson_id, window, min_group_size=5, use_rollup=False
            )

    async def smoothed_class_timeline() -> object:
        async with sessions() as session:
            return await timeline_buckets(session, lesson_id, window, min_group_size=5, smooth=5)

    buckets = await class_timeline()
    assert isinstance(buckets, list)
    assert len(buckets) == minutes
    class_ms, class_max = await median_ms(class_timeline, runs)
    student_ms, student_max = await median_ms(student_timeline, runs)
    summary_ms, summary_max = await median_ms(summary_queries, max(3, runs // 4))
    raw_ms, raw_max = await median_ms(raw_class_timeline, max(3, runs // 4))
    smooth_ms, smooth_max = await median_ms(smoothed_class_timeline, max(3, runs // 4))
    print(
        f"class timeline, 1-minute buckets: median {class_ms:.1f} ms, worst {class_max:.1f} ms "
        f"(target < {CLASS_TARGET_MS} ms)"
    )
    print(
        f"student timeline + raw points:    median {student_ms:.1f} ms, worst "
        f"{student_max:.1f} ms (target < {STUDENT_TARGET_MS} ms)"
    )
    print(
        f"summary queries (5 markers):      median {summary_ms:.1f} ms, worst {summary_max:.1f} ms"
    )
    print(f"class timeline from raw events:   median {raw_ms:.1f} ms, worst {raw_max:.1f} ms")
    print(f"class timeline, smooth=5 (raw):   median {smooth_ms:.1f} ms, worst {smooth_max:.1f} ms")

    for title, one_student in (("class", False), ("student", True)):
        per_student, params = per_student_buckets(
            lesson_id, window, student_id=student_id if one_student else None
        )
        sql = "EXPLAIN (ANALYZE, BUFFERS) " + _timeline_sql(per_student)
        async with engine.connect() as conn:
            plan = [r[0] for r in (await conn.execute(text(sql), params)).all()]
        scans = [line.strip() for line in plan if "Scan" in line]
        print(f"\n{title} timeline plan: {'; '.join(scans)}")
        print("  " + plan[-1].strip())
    await engine.dispose()


def insert_cost(url: str, seeded: SeededLesson, student_id: uuid.UUID, frames: int) -> None:
    """Per-frame write time as a worker sees it (one frame, one transaction), with the
    rollup trigger and with it disabled."""
    engine = make_sync_engine(url)
    results = {}
    for label, enabled in (("with rollup trigger", True), ("without", False)):
        with engine.begin() as conn:
            action = "ENABLE" if enabled else "DISABLE"
            conn.execute(text(f"ALTER TABLE face_events {action} TRIGGER face_events_fold_insert"))
        base = seeded.starts_at + dt.timedelta(hours=3 if enabled else 4)
        events = [
            SeedEvent(student_id, base + dt.timedelta(seconds=5 * i), i % 7) for i in range(frames)
        ]
        started = time.perf_counter()
        for event in events:
            insert_events(engine, seeded.lesson_id, [event])
        results[label] = (time.perf_counter() - started) * 1000 / frames
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE face_events ENABLE TRIGGER face_events_fold_insert"))
    engine.dispose()
    print(
        "\nper-frame write (frame row + event row, one transaction each): "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in results.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--minutes", type=int, default=90)
    parser.add_argument("--interval", type=int, default=5, help="seconds between frames")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    url = create_database(args.server)
    try:
        engine = make_sync_engine(url)
        seeded = seed_lesson(engine, minutes=args.minutes, title="Benchmark lesson")
        for n in range(5):
            add_marker(engine, seeded.lesson_id, seeded.at(n * args.minutes * 12), f"Slide {n + 1}")
        started = time.perf_counter()
        events = generate_events(
            engine,
            seeded,
            students=args.students,
            minutes=args.minutes,
            interval_seconds=args.interval,
        )
        with engine.connect() as conn:
            student_id = conn.execute(
                text("SELECT student_id FROM face_events WHERE lesson_id = :l LIMIT 1"),
                {"l": seeded.lesson_id},
            ).scalar_one()
        engine.dispose()
        print(
            f"seeded {events:,} face events ({args.students} students, {args.minutes} min, "
            f"one frame per {args.interval} s) in {time.perf_counter() - started:.1f} s"
        )
        asyncio.run(
            measure(url, seeded.lesson_id, student_id, seeded.starts_at, args.minutes, args.runs)
        )
        insert_cost(url, seeded, student_id, frames=300)
    finally:
        if args.keep:
            print(f"kept {url}")
        else:
            drop_database(args.server, url)


if __name__ == "__main__":
    main()
