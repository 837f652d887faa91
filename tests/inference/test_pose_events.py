"""Head pose and the facing call stored with each face event, and counted in the rollup."""

from __future__ import annotations

import cv2
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.inference import process
from services.inference.resources import WorkerResources
from shared.db.models import EventKind, FaceEvent, FaceEventMinute, FaceQuality, FrameStatus
from shared.labels import Expression
from shared.vision.detect import HAAR, make_detector
from shared.vision.pipeline import Pipeline
from tests.conftest import MEDIA
from tests.inference.conftest import FakeClassifier, World


def clip_frame(index: int) -> bytes:
    """Frame ``index`` of short_hamilton_clip.mp4 as a JPEG."""
    capture = cv2.VideoCapture(str(MEDIA / "short_hamilton_clip.mp4"))
    frame = None
    for _ in range(index + 1):
        ok, frame = capture.read()
        assert ok
    capture.release()
    ok, data = cv2.imencode(".jpg", np.asarray(frame))
    assert ok
    return data.tobytes()


def rollup(world: World) -> tuple[int, int, int]:
    """(frames, posed_frames, facing_frames) summed over the lesson's rollup rows."""
    with Session(world.engine) as session:
        rows = session.execute(
            select(
                FaceEventMinute.frames,
                FaceEventMinute.posed_frames,
                FaceEventMinute.facing_frames,
            ).where(FaceEventMinute.lesson_id == world.lesson_id)
        ).all()
    return (sum(r[0] for r in rows), sum(r[1] for r in rows), sum(r[2] for r in rows))


def test_a_frontal_face_is_stored_facing_with_its_angles(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    ref = world.add_frame(one_face)
    assert process.process_frame(ref, resources).status is FrameStatus.DONE
    (event,) = world.events(ref.frame_id)
    assert event.quality is FaceQuality.OK
    assert event.label == Expression.HAPPY
    assert event.yaw is not None
    assert event.pitch is not None
    assert abs(event.yaw) < 15
    assert abs(event.pitch) < 25
    assert event.facing is True
    assert rollup(world) == (1, 1, 1)


def test_heads_turned_away_are_stored_not_facing_and_get_no_label(
    world: World, resources: WorkerResources
) -> None:
    # Frame 250 of the clip: the audience, heads in three-quarter view and profile.
    ref = world.add_frame(clip_frame(250))
    assert process.process_frame(ref, resources).status is FrameStatus.DONE
    events = world.events(ref.frame_id)
    assert len(events) >= 2
    assert all(e.facing is False for e in events)
    assert all(e.yaw is not None and e.pitch is not None for e in events)
    # Turned past the quality gate's limit (about 45 degrees): no forced expression.
    turned = [e for e in events if e.quality is FaceQuality.TURNED_AWAY]
    assert turned
    assert all(e.label is None for e in turned)
    assert rollup(world) == (1, 1, 0)


def test_a_no_face_frame_and_a_haar_face_have_no_pose(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    blank = cv2.imencode(".png", np.full((480, 640, 3), 127, np.uint8))[1].tobytes()
    ref = world.add_frame(blank)
    process.process_frame(ref, resources)
    (empty,) = world.events(ref.frame_id)
    assert empty.kind is EventKind.NO_FACE
    assert (empty.yaw, empty.pitch, empty.facing) == (None, None, None)

    # The thesis's Haar cascade finds the face but has no keypoints to pose it with.
    haar = WorkerResources(
        settings=resources.settings,
        engine=resources.engine,
        redis=resources.redis,
        pipeline=Pipeline(FakeClassifier(), make_detector(HAAR)),
    )
    ref = world.add_frame(one_face)
    process.process_frame(ref, haar)
    (face,) = world.events(ref.frame_id)
    assert face.kind is EventKind.FACE
    assert face.label == Expression.HAPPY
    assert (face.yaw, face.pitch, face.facing) == (None, None, None)
    # Two frames, neither with a pose: facing shares have nothing to count.
    assert rollup(world) == (2, 0, 0)


def test_deleting_an_event_takes_its_facing_counts_out_of_the_rollup(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    for _ in range(2):
        process.process_frame(world.add_frame(one_face), resources)
    assert rollup(world) == (2, 2, 2)
    with Session(world.engine) as session, session.begin():
        first = session.scalars(
            select(FaceEvent).where(FaceEvent.lesson_id == world.lesson_id).limit(1)
        ).one()
        session.delete(first)
    assert rollup(world) == (1, 1, 1)
