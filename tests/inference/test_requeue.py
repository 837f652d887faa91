"""Lost-message recovery from the frames' own state (PostgreSQL, the bytes' keys), on the
real PostgreSQL and Redis: what is requeued, when, how often, and that a repeat is harmless."""

from __future__ import annotations

import datetime as dt

import redis as redis_lib

from services.inference import orphans, process
from services.inference.resources import WorkerResources
from shared.db.models import FrameStatus
from shared.schemas import FRAME_QUEUE, FrameRef
from tests.inference.conftest import NOW, World

PERIOD = dt.timedelta(minutes=2)
OLD = NOW - dt.timedelta(hours=1)


def sweep(resources: WorkerResources, *, waiting: int | None = 3) -> list[FrameRef]:
    published: list[FrameRef] = []
    requeued = process.requeue_orphans(
        resources,
        published.append,
        older_than=PERIOD,
        now=NOW,
        waiting=None if waiting is None else (lambda: waiting),
    )
    assert requeued == [ref.frame_id for ref in published]
    return published


def test_a_frame_is_requeued_once_the_queue_has_passed_it(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    lost = world.add_frame(one_face, received_at=OLD)
    bytes_gone = world.add_frame(None, received_at=OLD)
    recent = world.add_frame(one_face)
    # Nothing after it is finished and the queue holds messages: it may just be waiting.
    assert sweep(resources) == []
    # A frame received after the cutoff is done: the workers have passed the lost one.
    later = world.add_frame(one_face, received_at=NOW - dt.timedelta(seconds=30))
    assert process.process_frame(later, resources).status is FrameStatus.DONE

    published = sweep(resources)

    assert [ref.frame_id for ref in published] == [lost.frame_id]
    assert published[0].lesson_id == world.lesson_id
    assert published[0].student_id == world.student_id
    assert published[0].captured_at == lost.captured_at
    # The frame without bytes is left to the expiry, the recent one to its message.
    for ref in (lost, bytes_gone, recent):
        assert world.frame(ref.frame_id).status is FrameStatus.QUEUED


def test_an_empty_queue_has_passed_every_old_queued_frame(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    lost = world.add_frame(one_face, received_at=OLD)
    assert sweep(resources, waiting=None) == []  # length unknown, nothing finished
    assert [ref.frame_id for ref in sweep(resources, waiting=0)] == [lost.frame_id]


def test_a_frame_finished_before_the_cutoff_says_nothing_of_later_ones(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    world.add_frame(one_face, received_at=OLD)
    earlier = world.add_frame(one_face, received_at=OLD - dt.timedelta(minutes=1))
    process.process_frame(earlier, resources)
    assert sweep(resources) == []


def test_a_requeued_frame_waits_a_period_before_it_is_requeued_again(
    world: World, resources: WorkerResources, one_face: bytes, redis_client: redis_lib.Redis
) -> None:
    lost = world.add_frame(one_face, received_at=OLD)
    assert len(sweep(resources, waiting=0)) == 1
    # A second sweep (or a second beat) within the period publishes nothing.
    assert sweep(resources, waiting=0) == []
    ttl = redis_client.ttl(orphans.requeued_key(lost.frame_id))
    assert 0 < ttl <= PERIOD.total_seconds()
    redis_client.delete(orphans.requeued_key(lost.frame_id))  # the period is over
    assert [ref.frame_id for ref in sweep(resources, waiting=0)] == [lost.frame_id]


def test_the_sweep_reads_no_message_of_the_broker(
    world: World, resources: WorkerResources, one_face: bytes, redis_client: redis_lib.Redis
) -> None:
    """Unreadable messages in the queue or kombu's hash do not matter: they are never read."""
    lost = world.add_frame(one_face, received_at=OLD)
    redis_client.lpush(FRAME_QUEUE, b"not json")
    redis_client.hset("unacked", "tag", b"[{}]")
    assert [ref.frame_id for ref in sweep(resources, waiting=0)] == [lost.frame_id]


def test_a_requeued_frame_delivered_twice_is_stored_once(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    """The message was only slow: the original and the requeued copy both arrive."""
    slow = world.add_frame(one_face, received_at=OLD)
    (copy,) = sweep(resources, waiting=0)
    first = process.process_frame(slow, resources)
    second = process.process_frame(copy, resources)
    assert first.status is FrameStatus.DONE
    assert first.changed
    assert not second.changed
    assert len(world.events(slow.frame_id)) == 1
