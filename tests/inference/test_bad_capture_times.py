"""Rows with capture times outside their lesson, as stored before ingest checked them.

PostgreSQL holds years 1 and 9999 as ±infinity, which psycopg cannot load: one
such queued frame used to fail its task forever and every run of the periodic
expiry and requeue; a year 2999 was never purged. Now the worker and each
periodic task mark such a frame failed (with a log line), the other frames go
on as before, and the purge deletes what lies impossibly far ahead.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select, text

from services.inference import process
from services.inference.resources import WorkerResources
from shared.db.models import FaceEvent, Frame, FrameStatus
from shared.schemas import FrameRef, frame_key
from tests.inference.conftest import NOW, World

#: What the ingest of before stored for a client's capture time.
STORED = {
    "-infinity": "-infinity",
    "infinity": "infinity",
    "year 1": "0001-01-01 00:00:01+00",
    "year 2999": "2999-01-01 00:00:00+00",
    "a day before the lesson": (NOW - dt.timedelta(days=1)).isoformat(),
}
OLD = NOW - dt.timedelta(hours=1)


def set_captured_at(world: World, frame_id: uuid.UUID, value: str) -> None:
    for table, key in (("frames", "id"), ("face_events", "frame_id")):
        with world.engine.begin() as conn:
            conn.execute(
                text(f"UPDATE {table} SET captured_at = CAST(:v AS timestamptz) WHERE {key} = :id"),
                {"v": value, "id": frame_id},
            )


def bad_frame(world: World, value: str, data: bytes | None, received_at: dt.datetime) -> FrameRef:
    ref = world.add_frame(data, received_at=received_at)
    set_captured_at(world, ref.frame_id, value)
    return ref


def status_of(world: World, frame_id: uuid.UUID) -> tuple[FrameStatus, str | None]:
    with world.engine.connect() as conn:
        status, reason = conn.execute(
            text("SELECT status, failure_reason FROM frames WHERE id = :id"), {"id": frame_id}
        ).one()
    return FrameStatus(status), reason


@pytest.mark.parametrize("stored", STORED)
def test_the_worker_fails_such_a_frame_instead_of_crashing(
    stored: str, world: World, resources: WorkerResources, one_face: bytes
) -> None:
    ref = bad_frame(world, STORED[stored], one_face, NOW)
    outcome = process.process_frame(ref, resources)
    assert outcome.status is FrameStatus.FAILED
    assert outcome.reason == "invalid_capture_time"
    assert status_of(world, ref.frame_id) == (FrameStatus.FAILED, "invalid_capture_time")
    assert world.events(ref.frame_id) == []
    assert not world.redis.exists(frame_key(ref.frame_id))


def test_expiry_marks_them_failed_and_goes_on(
    world: World, resources: WorkerResources, one_face: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    bad = [bad_frame(world, value, one_face, OLD) for value in STORED.values()]
    gone = world.add_frame(None, received_at=OLD)
    still_there = world.add_frame(one_face, received_at=OLD)
    assert process.expire_stale(resources, now=NOW) == 1
    assert status_of(world, gone.frame_id) == (FrameStatus.EXPIRED, "bytes_expired")
    assert status_of(world, still_there.frame_id) == (FrameStatus.QUEUED, None)
    for ref in bad:
        assert status_of(world, ref.frame_id) == (FrameStatus.FAILED, "invalid_capture_time")
        assert not world.redis.exists(frame_key(ref.frame_id))
        assert f"frame {ref.frame_id}: capture time outside its lesson" in caplog.text
    # The next run does not meet them again.
    caplog.clear()
    assert process.expire_stale(resources, now=NOW) == 0
    assert "capture time" not in caplog.text


def test_requeue_marks_them_failed_and_goes_on(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    bad = [bad_frame(world, value, one_face, OLD) for value in STORED.values()]
    lost = world.add_frame(one_face, received_at=OLD)
    published: list[FrameRef] = []
    requeued = process.requeue_orphans(
        resources, published.append, older_than=dt.timedelta(minutes=2), now=NOW, waiting=lambda: 0
    )
    assert requeued == [lost.frame_id]
    assert [ref.frame_id for ref in published] == [lost.frame_id]
    for ref in bad:
        assert status_of(world, ref.frame_id) == (FrameStatus.FAILED, "invalid_capture_time")


def test_purge_deletes_rows_captured_impossibly_far_ahead(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    kept = world.add_frame(one_face)
    assert process.process_frame(kept, resources).status is FrameStatus.DONE
    ahead = {}
    for value in ("infinity", "2999-01-01 00:00:00+00", "-infinity"):
        ref = world.add_frame(one_face)
        assert process.process_frame(ref, resources).status is FrameStatus.DONE
        set_captured_at(world, ref.frame_id, value)  # done with events, as before the check
        ahead[value] = ref.frame_id
    purged = process.purge_old(resources)
    assert (purged.partitions, purged.events, purged.frames) == ([], 3, 3)
    with world.engine.connect() as conn:
        assert set(conn.scalars(select(Frame.id))) == {kept.frame_id}
        assert set(conn.scalars(select(FaceEvent.frame_id))) == {kept.frame_id}
