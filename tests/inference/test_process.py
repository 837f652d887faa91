"""The frame task's body against the real PostgreSQL and Redis."""

from __future__ import annotations

import datetime as dt
import json
import socket

import cv2
import numpy as np
import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from services.inference import process
from services.inference.resources import WorkerResources
from shared.db.models import Consent, ConsentParty, EventKind, FaceQuality, Frame, FrameStatus
from shared.labels import Expression
from shared.schemas import FrameRef, LiveNotice, frame_key, live_channel
from tests.inference.conftest import NOW, FakeClassifier, World, make_resources


def test_frame_with_two_faces_is_stored_announced_and_its_bytes_deleted(
    world: World, resources: WorkerResources, two_faces: bytes
) -> None:
    ref = world.add_frame(two_faces)
    listener = world.redis.pubsub()
    listener.subscribe(live_channel(world.lesson_id))
    listener.get_message(timeout=1)  # the subscription confirmation

    outcome = process.process_frame(ref, resources)

    assert outcome.status is FrameStatus.DONE
    frame = world.frame(ref.frame_id)
    assert frame.status is FrameStatus.DONE
    assert frame.processed_at is not None
    assert frame.failure_reason is None
    events = world.events(ref.frame_id)
    assert [e.face_index for e in events] == [0, 1]
    for event in events:
        assert event.kind is EventKind.FACE
        assert event.quality is FaceQuality.OK
        assert event.label == Expression.HAPPY
        assert event.confidence == pytest.approx(0.9)
        assert len(event.probabilities) == 7
        assert event.model_version == "fake-happy-1"
        assert event.lesson_id == world.lesson_id
        assert event.student_id == world.student_id
        assert event.box_w > 100
    assert events[0].box_x < events[1].box_x
    assert world.redis.exists(frame_key(ref.frame_id)) == 0

    message = listener.get_message(timeout=5)
    assert message is not None
    notice = LiveNotice.model_validate(json.loads(message["data"]))
    assert notice.frame_id == ref.frame_id
    assert notice.status == "done"
    assert notice.faces == 2
    assert notice.labels == ["happy", "happy"]
    listener.close()


def test_frame_processed_twice_is_written_once(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    ref = world.add_frame(one_face)
    first = process.process_frame(ref, resources)
    # A redelivery with the bytes put back (e.g. a retry that raced the delete).
    world.redis.set(frame_key(ref.frame_id), one_face)
    second = process.process_frame(ref, resources)
    assert first.changed
    assert not second.changed
    assert second.status is FrameStatus.DONE
    assert len(world.events(ref.frame_id)) == 1
    assert world.redis.exists(frame_key(ref.frame_id)) == 0


def test_blank_frame_gives_one_no_face_event(world: World, resources: WorkerResources) -> None:
    ok, data = cv2.imencode(".png", np.full((480, 640, 3), 120, np.uint8))
    ref = world.add_frame(data.tobytes())
    outcome = process.process_frame(ref, resources)
    assert outcome.status is FrameStatus.DONE
    (event,) = world.events(ref.frame_id)
    assert event.kind is EventKind.NO_FACE
    assert event.label is None
    assert event.box_x is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"this is plain text, not a picture", "unsupported_format"),
        (b"", "empty"),
    ],
)
def test_undecodable_bytes_fail_with_the_reason(
    world: World, resources: WorkerResources, data: bytes, reason: str
) -> None:
    ref = world.add_frame(data)
    outcome = process.process_frame(ref, resources)
    assert outcome.status is FrameStatus.FAILED
    frame = world.frame(ref.frame_id)
    assert (frame.status, frame.failure_reason) == (FrameStatus.FAILED, reason)
    assert world.events(ref.frame_id) == []
    assert world.redis.exists(frame_key(ref.frame_id)) == 0


def test_truncated_jpeg_fails_as_truncated(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    ref = world.add_frame(one_face[: len(one_face) // 3])
    process.process_frame(ref, resources)
    assert world.frame(ref.frame_id).failure_reason == "truncated"


def test_expired_bytes_mark_the_frame_expired(world: World, resources: WorkerResources) -> None:
    ref = world.add_frame(None)
    outcome = process.process_frame(ref, resources)
    assert outcome.status is FrameStatus.EXPIRED
    frame = world.frame(ref.frame_id)
    assert (frame.status, frame.failure_reason) == (FrameStatus.EXPIRED, "bytes_expired")
    assert world.events(ref.frame_id) == []


def test_consent_withdrawn_after_queueing_fails_and_deletes_the_bytes(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    ref = world.add_frame(one_face)
    with Session(world.engine) as session, session.begin():
        session.execute(
            update(Consent).where(Consent.id == world.consent_id).values(withdrawn_at=NOW)
        )
    outcome = process.process_frame(ref, resources)
    assert outcome.status is FrameStatus.FAILED
    frame = world.frame(ref.frame_id)
    assert frame.failure_reason == "consent_withdrawn"
    assert world.events(ref.frame_id) == []
    assert world.redis.exists(frame_key(ref.frame_id)) == 0


def test_lesson_scoped_consent_covers_only_its_lesson(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    ref = world.add_frame(one_face)
    with Session(world.engine) as session, session.begin():
        consent = session.get(Consent, world.consent_id)
        assert consent is not None
        consent.lesson_id = world.lesson_id
    assert process.process_frame(ref, resources).status is FrameStatus.DONE


def lesson_consent(
    world: World,
    party: ConsentParty,
    granted_at: dt.datetime,
    withdrawn_at: dt.datetime | None = None,
) -> Consent:
    """A lesson-level consent decision of ``party`` for the world's student."""
    return Consent(
        student_id=world.student_id,
        class_id=world.class_id,
        lesson_id=world.lesson_id,
        party=party,
        granted_at=granted_at,
        withdrawn_at=withdrawn_at,
    )


def test_lesson_refusal_overrides_class_consent_as_ingest_decides(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    ref = world.add_frame(one_face)
    with Session(world.engine) as session, session.begin():
        # The class-level consent stays active; a later lesson-level refusal decides.
        later = NOW + dt.timedelta(seconds=1)
        session.add(lesson_consent(world, ConsentParty.STUDENT, later, withdrawn_at=later))
    outcome = process.process_frame(ref, resources)
    assert outcome.status is FrameStatus.FAILED
    assert world.frame(ref.frame_id).failure_reason == "consent_withdrawn"


def test_inference_switched_off_stores_presence_without_expression(
    world: World, pg_url: str, redis_url: str, two_faces: bytes
) -> None:
    res = make_resources(pg_url, redis_url, inference_enabled=False)
    try:
        ref = world.add_frame(two_faces)
        process.process_frame(ref, res)
    finally:
        res.close()
    events = world.events(ref.frame_id)
    assert len(events) == 2
    for event in events:
        assert event.kind is EventKind.FACE
        assert event.box_w is not None
        assert event.label is None
        assert event.probabilities is None
        assert event.confidence is None
        assert event.model_version is None


def test_an_uncertain_face_keeps_its_probabilities_and_model_but_no_label(
    world: World, pg_url: str, redis_url: str, two_faces: bytes
) -> None:
    res = make_resources(pg_url, redis_url)
    # The fake model is 90 % sure of every face: under a 95 % threshold, none is labelled.
    res.pipeline.uncertain_below = 0.95
    try:
        ref = world.add_frame(two_faces)
        process.process_frame(ref, res)
    finally:
        res.close()
    events = world.events(ref.frame_id)
    assert len(events) == 2
    for event in events:
        assert event.label is None
        assert event.probabilities is not None
        assert len(event.probabilities) == 7
        assert event.confidence == pytest.approx(0.9)
        assert event.model_version == FakeClassifier.version


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_down_raises_a_transient_error_then_a_retry_stores(
    world: World, resources: WorkerResources, redis_url: str, one_face: bytes
) -> None:
    ref = world.add_frame(one_face)
    down = make_resources(f"postgresql://postgres@127.0.0.1:{closed_port()}/nowhere", redis_url)
    try:
        with pytest.raises(OperationalError):
            process.process_frame(ref, down)
    finally:
        down.close()
    # Nothing was lost: the frame is still queued and its bytes are still there.
    assert world.frame(ref.frame_id).status is FrameStatus.QUEUED
    assert world.redis.exists(frame_key(ref.frame_id)) == 1
    assert process.process_frame(ref, resources).status is FrameStatus.DONE
    assert len(world.events(ref.frame_id)) == 1


def assert_expired_alone(world: World, expired: FrameRef, *queued: FrameRef) -> None:
    """``expired`` is marked expired for its lost bytes; the ``queued`` frames still wait."""
    assert world.frame(expired.frame_id).status is FrameStatus.EXPIRED
    assert world.frame(expired.frame_id).failure_reason == "bytes_expired"
    for ref in queued:
        assert world.frame(ref.frame_id).status is FrameStatus.QUEUED


def test_expire_marks_only_old_frames_whose_bytes_are_gone(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    old = NOW - dt.timedelta(hours=1)
    gone = world.add_frame(None, received_at=old)
    still_there = world.add_frame(one_face, received_at=old)
    recent = world.add_frame(None)
    # The frames' clock is NOW, fixed at import: a run that reaches this test
    # minutes later must not see the recent frame as old.
    assert process.expire_stale(resources, now=NOW) == 1
    assert_expired_alone(world, gone, still_there, recent)


def test_after_redis_lost_its_data_recent_frames_without_bytes_expire_at_once(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    """`up` restarted its embedded Redis (which keeps nothing): no TTL to wait for."""
    restarted = NOW + dt.timedelta(seconds=1)
    lost = world.add_frame(None)  # received a moment before the restart
    arrived_since = world.add_frame(one_face)  # its bytes are in the new Redis
    later = world.add_frame(None, received_at=restarted + dt.timedelta(seconds=5))
    assert process.expire_stale(resources, now=NOW, received_before=restarted) == 1
    assert_expired_alone(world, lost, arrived_since, later)


def test_purge_deletes_what_is_older_than_the_retention(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    ref = world.add_frame(one_face)
    process.process_frame(ref, resources)
    nothing = process.purge_old(resources)
    assert (nothing.partitions, nothing.events, nothing.frames) == ([], 0, 0)
    with Session(world.engine) as session:
        assert session.get(Frame, ref.frame_id) is not None
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    # The frame's whole day is older than the retention then: its partitions are dropped.
    day = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    purged = process.purge_old(resources, now=later)
    assert {f"frames_p{day}", f"face_events_p{day}", f"face_event_minutes_p{day}"} <= set(
        purged.partitions
    )
    with Session(world.engine) as session:
        assert session.get(Frame, ref.frame_id) is None


@pytest.mark.parametrize(("fraction", "faces"), [(None, 2), ("0.5", 0)])
def test_worker_pipeline_detects_down_to_the_configured_face_size(
    monkeypatch: pytest.MonkeyPatch, fraction: str | None, faces: int
) -> None:
    from services.inference.config import WorkerProcessSettings
    from services.inference.resources import build_pipeline
    from shared import settings
    from tests.conftest import MEDIA

    monkeypatch.setenv("CLASSPULSE_DATABASE_URL", "postgresql://unused/x")
    monkeypatch.setenv("CLASSPULSE_REDIS_URL", "redis://unused/0")
    monkeypatch.setenv("CLASSPULSE_INFERENCE_ENABLED", "false")
    if fraction is not None:
        monkeypatch.setenv("CLASSPULSE_MIN_FACE_FRACTION", fraction)
    pipeline = build_pipeline(settings.load(WorkerProcessSettings))
    # two_people.jpg: two faces of about a fifth of the photo's height.
    assert len(pipeline.analyze(cv2.imread(str(MEDIA / "two_people.jpg"))).faces) == faces


def test_students_withdrawal_stops_processing_whatever_the_school_grants(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    """Either party's no decides: a later school grant does not undo the student's."""
    ref = world.add_frame(one_face)
    later = NOW + dt.timedelta(seconds=1)
    with Session(world.engine) as session, session.begin():
        session.add_all(
            [
                lesson_consent(world, ConsentParty.STUDENT, later, withdrawn_at=later),
                lesson_consent(world, ConsentParty.SCHOOL, later + dt.timedelta(seconds=1)),
            ]
        )
    outcome = process.process_frame(ref, resources)
    assert outcome.status is FrameStatus.FAILED
    assert world.frame(ref.frame_id).failure_reason == "consent_withdrawn"
