"""Day partitions of frames, face events and the rollup (issue 23, point 3), on the real
PostgreSQL: where the worker's rows land, how the beat task makes days ahead, what
the retention purge drops, and that the frame lookups read one partition."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from services.analytics.queries.lessons import status_counts_query
from services.inference import process, store, tasks
from services.inference.celery_app import celery_config
from services.inference.config import CelerySettings
from services.inference.resources import WorkerResources
from shared.db import partitions
from shared.db.models import FrameStatus, Lesson
from tests.inference.conftest import NOW, World

DAY = dt.timedelta(days=1)
TABLES = ("frames", "face_events", "face_event_minutes")


@pytest.fixture(autouse=True)
def days_from_today(clean_db: Engine) -> Iterator[None]:
    """Today's partitions and the days ahead, before and after each test (some drop them)."""
    with clean_db.begin() as conn:
        partitions.ensure_ahead(conn, NOW)
    yield
    with clean_db.begin() as conn:
        partitions.ensure_ahead(conn, NOW)


def where_rows_are(engine: Engine, table: str, column: str = "frame_id") -> dict[str, str]:
    """``{row's frame id (or lesson id): partition holding it}``."""
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT {column}::text, tableoid::regclass::text FROM {table}"))
        return {row[0]: row[1] for row in rows}


def days_of(engine: Engine, table: str) -> list[dt.datetime]:
    with engine.connect() as conn:
        return partitions.existing_days(conn, table)


def test_a_processed_frame_its_events_and_rollup_land_in_the_day_of_capture(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    day = NOW.strftime("%Y%m%d")
    ref = world.add_frame(one_face)
    assert process.process_frame(ref, resources).status is FrameStatus.DONE
    frame_id = str(ref.frame_id)
    assert where_rows_are(world.engine, "frames", "id") == {frame_id: f"frames_p{day}"}
    assert where_rows_are(world.engine, "face_events") == {frame_id: f"face_events_p{day}"}
    assert where_rows_are(world.engine, "face_event_minutes", "lesson_id") == {
        str(world.lesson_id): f"face_event_minutes_p{day}"
    }
    # A second delivery writes nothing new: one result per frame.
    again = process.process_frame(ref, resources)
    assert again.changed is False
    assert len(world.events(ref.frame_id)) == 1


def test_the_worker_finds_its_frame_in_one_partition(
    world: World, resources: WorkerResources
) -> None:
    """The lookup by id and the message's capture time is pruned to that day's partition."""
    ref = world.add_frame(None)
    query = "EXPLAIN SELECT 1 FROM frames WHERE id = :id AND captured_at = :at FOR UPDATE"
    with world.engine.connect() as conn:
        plan = "\n".join(conn.scalars(text(query), {"id": ref.frame_id, "at": ref.captured_at}))
        partitions_scanned = {
            name for name in partitions.partition_names(conn) if f" {name} " in plan + " "
        }
        assert partitions_scanned == {f"frames_p{NOW:%Y%m%d}"}, plan
    with world.engine.begin() as conn:
        found = store.lock_frame(conn, ref.frame_id, ref.captured_at, resources.clock_skew)
        assert found is not None
        assert found.key_time == ref.captured_at


def frame_partitions_read(conn: Connection, query: str) -> set[str]:
    """The partitions the plan of ``query`` reads (pruned ones are not in it)."""
    names = partitions.partition_names(conn)
    plan = conn.scalars(text(f"EXPLAIN (COSTS OFF) {query}"))
    return {word for line in plan for word in line.split() if word in names}


def test_a_lesson_s_frame_counts_read_only_its_days(world: World, clean_db: Engine) -> None:
    """The frame counts a teacher sees read the lesson's day partitions (its times give or
    take the largest clock skew allowed), not every day's."""
    with clean_db.begin() as conn:
        partitions.ensure_ahead(conn, NOW - 3 * DAY, days_ahead=partitions.DAYS_AHEAD + 3)
    world.add_frame(None)
    with Session(clean_db) as session:
        lesson = session.get_one(Lesson, world.lesson_id)
        starts, ends = lesson.starts_at, lesson.ends_at
        query = status_counts_query(lesson).compile(
            clean_db, compile_kwargs={"literal_binds": True}
        )
    first, last = map(partitions.day_start, partitions.capture_window(starts, ends))
    days = {f"frames_p{first + n * DAY:%Y%m%d}" for n in range((last - first) // DAY + 1)}
    with clean_db.connect() as conn:
        assert frame_partitions_read(conn, str(query)) == days
        assert len(partitions.existing_days(conn, "frames")) >= len(days) + 8
        (status, _, count), *_ = conn.execute(text(str(query))).all()
    assert (FrameStatus(status), count) == (FrameStatus.QUEUED, 1)


def test_a_frame_whose_time_changed_after_its_message_is_still_finished(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    """The row moved to another day (an UPDATE of the partition key): the id alone finds it."""
    ref = world.add_frame(one_face)
    with world.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE frames SET captured_at = captured_at - interval '30 minutes' WHERE id = :i"
            ),
            {"i": ref.frame_id},
        )
    outcome = process.process_frame(ref, resources)
    assert outcome.status is FrameStatus.DONE
    assert world.frame(ref.frame_id).status is FrameStatus.DONE


def test_the_beat_task_creates_days_ahead_once(clean_db: Engine) -> None:
    later = NOW + dt.timedelta(days=40)
    with clean_db.begin() as conn:
        created = partitions.ensure_ahead(conn, later)
    first = partitions.day_start(later)
    expected = [first + n * DAY for n in range(partitions.DAYS_AHEAD + 1)]
    for table in ("frames", "face_events", "face_event_minutes"):
        assert set(expected) <= set(days_of(clean_db, table))
        assert partitions.partition_name(table, expected[-1]) in created
    with clean_db.begin() as conn:
        assert partitions.ensure_ahead(conn, later) == []
    assert tasks.create_partitions.name == "classpulse.create_partitions"


def test_beat_schedules_the_partition_task(redis_url: str) -> None:
    schedule = celery_config(CelerySettings(redis_url=redis_url))["beat_schedule"]
    assert schedule["create-partitions"]["task"] == tasks.CREATE_PARTITIONS_TASK


def test_a_new_day_takes_its_rows_out_of_the_default_partition(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    """Rows written while their day had no partition (beat down) move in when it is made,
    with their rollup rows, and the rollup still matches the events."""
    ref = world.add_frame(one_face)
    assert process.process_frame(ref, resources).status is FrameStatus.DONE
    day = partitions.day_start(NOW)
    with world.engine.begin() as conn:
        for table in ("face_events", "face_event_minutes", "frames"):
            conn.execute(text(f"DROP TABLE {partitions.partition_name(table, day)}"))
    ref2 = world.add_frame(one_face)
    assert process.process_frame(ref2, resources).status is FrameStatus.DONE
    assert set(where_rows_are(world.engine, "face_events").values()) == {"face_events_default"}
    assert process.create_partitions(resources) != []
    name = f"face_events_p{day:%Y%m%d}"
    assert where_rows_are(world.engine, "face_events") == {str(ref2.frame_id): name}
    assert set(where_rows_are(world.engine, "face_event_minutes", "lesson_id").values()) == {
        f"face_event_minutes_p{day:%Y%m%d}"
    }
    with world.engine.connect() as conn:
        assert conn.scalar(text("SELECT sum(frames) FROM face_event_minutes")) == 1


def test_retention_drops_whole_days_and_keeps_the_day_that_straddles_the_cutoff(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    ref = world.add_frame(one_face)
    assert process.process_frame(ref, resources).status is FrameStatus.DONE
    day = partitions.day_start(NOW)
    retention = dt.timedelta(days=resources.settings.retention_days)
    # The cutoff falls inside the frame's day: nothing of it goes yet.
    straddling = process.purge_old(resources, now=day + retention + dt.timedelta(hours=12))
    assert not any(name.endswith(f"{day:%Y%m%d}") for name in straddling.partitions)
    assert world.frame(ref.frame_id).status is FrameStatus.DONE
    # Once the whole day is older than the retention, its three partitions are dropped.
    purged = process.purge_old(resources, now=day + DAY + retention)
    assert {
        f"frames_p{day:%Y%m%d}",
        f"face_events_p{day:%Y%m%d}",
        f"face_event_minutes_p{day:%Y%m%d}",
    } <= set(purged.partitions)
    assert (purged.events, purged.frames) == (0, 0)
    with world.engine.connect() as conn:
        left = [conn.scalar(text(f"SELECT count(*) FROM {t}")) for t in TABLES]
    assert left == [0, 0, 0]


def test_retention_deletes_old_rows_of_the_default_partition_with_their_rollup(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    """Rows of a day that never had a partition are deleted row by row, through the
    parent table, so the rollup loses them too."""
    ref = world.add_frame(one_face)
    assert process.process_frame(ref, resources).status is FrameStatus.DONE
    with world.engine.begin() as conn:
        for table in ("face_events", "face_event_minutes", "frames"):
            conn.execute(text(f"DROP TABLE {partitions.partition_name(table, NOW)}"))
    old = world.add_frame(one_face)
    assert process.process_frame(old, resources).status is FrameStatus.DONE
    purged = process.purge_old(resources, now=NOW + dt.timedelta(days=32))
    assert (purged.events, purged.frames) == (1, 1)
    with world.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM face_event_minutes")) == 0
