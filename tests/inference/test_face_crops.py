"""The worker on a browser's face crops: no detection, the same quality gate, labels and pose."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.inference import process
from services.inference.resources import WorkerResources
from shared import face_crops
from shared.db.models import EventKind, FaceQuality, FrameStatus
from shared.labels import Expression
from shared.schemas import frame_key
from shared.vision.blazeface import FULL_RANGE, BlazeFace
from tests import face_crops_body
from tests.conftest import MEDIA
from tests.inference.conftest import World


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    image = cv2.imread(str(MEDIA / "two_people.jpg"))
    assert image is not None
    return image


def test_crops_are_labelled_as_the_whole_frame_would_be(
    world: World, resources: WorkerResources, photo: np.ndarray
) -> None:
    detections = BlazeFace(FULL_RANGE).detect(photo)
    assert len(detections) == 2
    whole = world.add_frame(cv2.imencode(".png", photo)[1].tobytes())
    crops = world.add_frame(face_crops_body.body(photo, detections))

    assert process.process_frame(whole, resources).status is FrameStatus.DONE
    outcome = process.process_frame(crops, resources)

    assert outcome.status is FrameStatus.DONE
    assert outcome.labels == ["happy", "happy"]
    expected, got = world.events(whole.frame_id), world.events(crops.frame_id)
    assert [e.face_index for e in got] == [0, 1]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.kind is EventKind.FACE
        assert mine.quality is FaceQuality.OK
        assert mine.label == Expression.HAPPY
        assert (mine.box_x, mine.box_y, mine.box_w, mine.box_h) == (
            theirs.box_x,
            theirs.box_y,
            theirs.box_w,
            theirs.box_h,
        )
        # The head pose comes from the sent keypoints, as from the detector's own.
        assert mine.yaw == pytest.approx(theirs.yaw, abs=0.01)
        assert mine.pitch == pytest.approx(theirs.pitch, abs=0.01)
        assert mine.facing == theirs.facing
    assert world.redis.exists(frame_key(crops.frame_id)) == 0


def test_no_face_body_gives_one_no_face_event(world: World, resources: WorkerResources) -> None:
    ref = world.add_frame(face_crops_body.no_face_body())
    outcome = process.process_frame(ref, resources)
    assert outcome.status is FrameStatus.DONE
    (event,) = world.events(ref.frame_id)
    assert event.kind is EventKind.NO_FACE
    assert event.box_x is None


def test_a_face_too_small_for_the_workers_is_dropped_as_their_detector_drops_it(
    world: World, resources: WorkerResources, photo: np.ndarray
) -> None:
    detections = BlazeFace(FULL_RANGE).detect(photo)
    big = (photo.shape[0] * 6, photo.shape[1] * 6)
    # The same crops, said to come from a frame 6x larger: the faces are under 1/10 of it.
    data = face_crops_body.body(photo, detections)
    meta, strip = face_crops.unpack(data)
    bigger = meta.model_copy(update={"frame_width": big[1], "frame_height": big[0]})
    ref = world.add_frame(face_crops.pack(bigger, strip))
    process.process_frame(ref, resources)
    (event,) = world.events(ref.frame_id)
    assert event.kind is EventKind.NO_FACE


def test_crops_of_the_wrong_size_fail_with_the_reason(
    world: World, resources: WorkerResources, photo: np.ndarray
) -> None:
    detections = BlazeFace(FULL_RANGE).detect(photo)
    one_crop = cv2.imencode(".png", np.zeros((96, 96), np.uint8))[1].tobytes()
    ref = world.add_frame(face_crops_body.body(photo, detections, strip=one_crop))
    outcome = process.process_frame(ref, resources)
    assert outcome.status is FrameStatus.FAILED
    assert world.frame(ref.frame_id).failure_reason == "bad_face_crops"
    assert world.events(ref.frame_id) == []


def test_broken_crops_fail_with_a_reason_never_a_crash(
    world: World, resources: WorkerResources, photo: np.ndarray
) -> None:
    detections = BlazeFace(FULL_RANGE).detect(photo)[:1]
    whole = face_crops_body.body(photo, detections)
    meta, strip = face_crops.unpack(whole)
    cases = {
        "undecodable": face_crops.pack(meta, strip[: len(strip) // 2]),
        "bad_face_crops": face_crops.MAGIC + b"\x00\x00\x00\x05{oops" + strip,
    }
    for reason, data in cases.items():
        ref = world.add_frame(data)
        assert process.process_frame(ref, resources).status is FrameStatus.FAILED
        assert world.frame(ref.frame_id).failure_reason == reason


def test_keypoints_on_one_point_are_flagged_not_labelled(
    world: World, resources: WorkerResources, photo: np.ndarray
) -> None:
    (first, *_) = BlazeFace(FULL_RANGE).detect(photo)
    data = face_crops_body.body(photo, [first])
    meta, strip = face_crops.unpack(data)
    point = meta.faces[0].keypoints[0]
    odd = meta.faces[0].model_copy(update={"keypoints": (point, point, point, point)})
    ref = world.add_frame(face_crops.pack(meta.model_copy(update={"faces": [odd]}), strip))
    assert process.process_frame(ref, resources).status is FrameStatus.DONE
    (event,) = world.events(ref.frame_id)
    assert event.kind is EventKind.FACE
    assert event.quality is not FaceQuality.OK
    assert event.label is None
