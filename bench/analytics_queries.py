"""Analytics query speed as the events grow: many 90-minute lessons of 500 students.

Seeds lessons of 500 students at one frame per 5 s (540,000 face events each,
generated in SQL) in a throwaway database on the real PostgreSQL, four lessons
a day (``--per-day``) on the days before today, each day in its own partitions
as the beat task would have made them (``--revision 0008``: the same on the
tables before partitioning). At each size in ``--sizes`` (lessons seeded so far) it
times the class timeline at 1-minute buckets and one student's timeline of the
last lesson through the API's own query functions (asyncpg, as served),
reporting median, p95 and worst over repeated runs, the plans PostgreSQL chose
(which partitions they read), and the per-frame write cost. Usage:

    python -m bench.analytics_queries [--server postgresql://postgres@127.0.0.1:5432/postgres]
                                      [--students 500] [--minutes 90] [--runs 20]
                                      [--sizes 2,10,20] [--per-day 4] [--revision head]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import ClauseElement, Engine, Executable, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from classpulse.harness.factories import (
    SeededLesson,
    SeedEvent,
    add_marker,
    generate_events,
    insert_events,
    seed_lesson,
)
from services.analytics.queries.summary import lesson_totals, segment_counts, student_totals
from services.analytics.queries.timeline import (
    labelled_points,
    per_student_buckets,
    timeline_buckets,
    timeline_query,
)
from services.analytics.window import TimeWindow
from services.inference import store
from shared.db import partitions
from shared.db.engine import async_session_factory, make_async_engine, make_sync_engine
from shared.db.migrate import upgrade
from shared.db.models import FrameStatus

CLASS_TARGET_MS = 150
STUDENT_TARGET_MS = 30


class Explain(Executable, ClauseElement):
    """``EXPLAIN (ANALYZE, BUFFERS)`` of a Core query, run with its parameters as the API
    runs it (SQLAlchemy's documented custom-construct pattern)."""

    inherit_cache = False

    def __init__(self, query: ClauseElement) -> None:
        self.query = query


@compiles(Explain)
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (ANALYZE, BUFFERS) " + compiler.process(element.query, **kw)


def create_database(server: str, revision: str = "head") -> str:
    """A fresh database on ``server`` migrated to ``revision``; returns its URL."""
    name = f"classpulse_bench_{uuid.uuid4().hex[:8]}"
    admin = make_sync_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url, revision)
    return url


def drop_database(server: str, url: str) -> None:
    admin = make_sync_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


async def median_ms(run: Callable[[], Awaitable[object]], runs: int) -> tuple[float, float, float]:
    """Median, p95 and worst wall time of ``runs`` calls (after one warm-up call)."""
    await run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await run()
        times.append((time.perf_counter() - start) * 1000)
    p95 = statistics.quantiles(times, n=20, method="inclusive")[-1] if len(times) > 1 else times[0]
    return statistics.median(times), p95, max(times)


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
    rows = (
        (
            "class timeline, 1-minute buckets",
            class_timeline,
            runs,
            f" (target p95 < {CLASS_TARGET_MS} ms)",
        ),
        (
            "student timeline + raw points",
            student_timeline,
            runs,
            f" (target p95 < {STUDENT_TARGET_MS} ms)",
        ),
        ("summary queries (5 markers)", summary_queries, max(3, runs // 4), ""),
        ("class timeline from raw events", raw_class_timeline, max(3, runs // 4), ""),
        ("class timeline, smooth=5 (raw)", smoothed_class_timeline, max(3, runs // 4), ""),
    )
    for title, run, n, target in rows:
        median, p95, worst = await median_ms(run, n)
        print(
            f"{title + ':':34s} median {median:.1f} ms, p95 {p95:.1f} ms, "
            f"worst {worst:.1f} ms{target}"
        )

    for title, one_student in (("class", False), ("student", True)):
        per_student, params = per_student_buckets(
            lesson_id, window, student_id=student_id if one_student else None
        )
        async with engine.connect() as conn:
            explain = Explain(timeline_query(per_student))
            plan = [r[0] for r in (await conn.execute(explain, params)).all()]
        scans = [line.strip() for line in plan if "Scan" in line or "Subplans Removed" in line]
        print(f"\n{title} timeline plan: {'; '.join(scans)}")
        print("  " + plan[-2].strip() + "; " + plan[-1].strip())
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


def lookup_cost(url: str, lesson_id: uuid.UUID, frames: int) -> None:
    """Per-frame cost of the worker's lock and status update (``store.lock_frame``,
    ``store.finish_frame``), by id and capture time (one partition) and by id alone
    (every partition), one transaction per frame."""
    engine = make_sync_engine(url)
    with engine.connect() as conn:
        keys = conn.execute(
            text("SELECT id, captured_at FROM frames WHERE lesson_id = :l LIMIT :n"),
            {"l": lesson_id, "n": frames},
        ).all()
    results = {}
    for label, pruned in (("by id and capture time", True), ("by id alone", False)):
        started = time.perf_counter()
        for frame_id, captured_at in keys:
            key_time = captured_at if pruned else None
            with engine.begin() as conn:
                store.lock_frame(conn, frame_id, key_time, dt.timedelta(minutes=5))
                store.finish_frame(conn, frame_id, key_time, FrameStatus.DONE)
        results[label] = (time.perf_counter() - started) * 1000 / len(keys)
    engine.dispose()
    print(
        "worker's frame lock + status update, one transaction each: "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in results.items())
    )


def seed_lessons(
    engine: Engine, first: int, last: int, args: argparse.Namespace
) -> list[tuple[SeededLesson, uuid.UUID]]:
    """Lessons ``first`` .. ``last - 1``, ``args.per_day`` a day (from 08:00 UTC, two hours
    apart) on the days before today, each day in its own partitions as the beat task
    makes them; returns each lesson and one of its students."""
    today = partitions.day_start(dt.datetime.now(dt.UTC))
    seeded_lessons = []
    for n in range(first, last):
        day = today - dt.timedelta(days=n // args.per_day + 1)
        starts_at = day + dt.timedelta(hours=8 + 2 * (n % args.per_day))
        if args.revision == "head":
            with engine.begin() as conn:
                for table in partitions.TABLES:
                    partitions.create_day(conn, table, starts_at)
        seeded = seed_lesson(
            engine, minutes=args.minutes, title=f"Benchmark lesson {n + 1}", starts_at=starts_at
        )
        for m in range(5):
            add_marker(engine, seeded.lesson_id, seeded.at(m * args.minutes * 12), f"Slide {m + 1}")
        generate_events(
            engine,
            seeded,
            students=args.students,
            minutes=args.minutes,
            interval_seconds=args.interval,
        )
        with engine.connect() as conn:
            student_id = conn.execute(
                text(
                    "SELECT student_id FROM face_events WHERE lesson_id = :l "
                    "AND captured_at >= :t LIMIT 1"
                ),
                {"l": seeded.lesson_id, "t": starts_at},
            ).scalar_one()
        seeded_lessons.append((seeded, student_id))
    return seeded_lessons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--minutes", type=int, default=90)
    parser.add_argument("--interval", type=int, default=5, help="seconds between frames")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--sizes",
        default="2,10,20",
        help="measure when this many lessons are seeded (comma-separated, ascending)",
    )
    parser.add_argument("--per-day", type=int, default=4, help="lessons on one day")
    parser.add_argument(
        "--revision",
        default="head",
        help="migrate the bench database to this revision only (0008: before partitioning)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]

    url = create_database(args.server, args.revision)
    try:
        engine = make_sync_engine(url)
        lessons: list[tuple[SeededLesson, uuid.UUID]] = []
        for size in sizes:
            started = time.perf_counter()
            lessons += seed_lessons(engine, len(lessons), size, args)
            with engine.begin() as conn:
                for table in ("frames", "face_events", "face_event_minutes"):
                    conn.execute(text(f"ANALYZE {table}"))
            with engine.connect() as conn:
                events = conn.execute(text("SELECT count(*) FROM face_events")).scalar_one()
                days = len(partitions.existing_days(conn, "face_events"))
            print(
                f"\n=== {len(lessons)} lessons, {events:,} face events and as many frames in "
                f"{days} day partitions ({args.students} students, {args.minutes} min, one "
                f"frame per {args.interval} s; seeding this step took "
                f"{time.perf_counter() - started:.0f} s)"
            )
            seeded, student_id = lessons[-1]
            asyncio.run(
                measure(
                    url, seeded.lesson_id, student_id, seeded.starts_at, args.minutes, args.runs
                )
            )
            insert_cost(url, seeded, student_id, frames=300)
            if args.revision == "head":
                lookup_cost(url, seeded.lesson_id, frames=300)
        engine.dispose()
    finally:
        if args.keep:
            print(f"kept {url}")
        else:
            drop_database(args.server, url)


if __name__ == "__main__":
    main()
