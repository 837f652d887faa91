"""Eye-level alignment, FER2013 framing and the keypoint quality checks, on real photos."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from shared.vision.align import FER_KEYPOINTS, aligned_crop, alignment_matrix, eye_angle, pose
from shared.vision.detect import BLAZEFACE_SHORT, RETINAFACE, Detection, make_detector
from shared.vision.pipeline import Pipeline
from shared.vision.preprocess import INPUT_SIZE
from shared.vision.quality import Quality
from tests.conftest import MEDIA
from tests.vision.test_pipeline import FakeClassifier


@pytest.fixture(scope="module")
def retina():  # type: ignore[no-untyped-def]
    return make_detector(RETINAFACE)


def photo(name: str) -> np.ndarray:
    return cv2.imread(str(MEDIA / name))


def only_face(detector, image: np.ndarray) -> Detection:  # type: ignore[no-untyped-def]
    (face,) = detector.detect(image)
    return face


def test_keypoints_land_on_the_fer2013_positions(retina) -> None:  # type: ignore[no-untyped-def]
    face = only_face(retina, photo("obama.jpg"))
    assert face.keypoints is not None
    matrix = alignment_matrix(face.keypoints)
    kp = face.keypoints
    mapped = np.array([kp.right_eye, kp.left_eye, kp.nose, kp.mouth]) @ matrix[:, :2].T
    mapped += matrix[:, 2]
    # Eyes exactly level, everything within a few pixels of the FER2013 medians.
    assert mapped[0, 1] == pytest.approx(mapped[1, 1], abs=1e-6)
    assert np.abs(mapped - FER_KEYPOINTS).max() < 3.0


@pytest.mark.parametrize("degrees", [-20, -10, 10, 20])
def test_a_tilted_face_is_levelled(retina, degrees: int) -> None:  # type: ignore[no-untyped-def]
    image = photo("meds-aa-S029-01.jpg")
    upright = only_face(retina, image)
    height, width = image.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    tilted = cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REPLICATE)
    face = only_face(retina, tilted)
    assert face.keypoints is not None
    assert upright.keypoints is not None
    # OpenCV's positive angle turns the picture anticlockwise: the eye line
    # then slopes up to the right, i.e. a negative image-space angle.
    roll = math.degrees(eye_angle(face.keypoints) - eye_angle(upright.keypoints))
    # Keypoints are a few pixels off: the roll they give is within 10 degrees.
    assert roll == pytest.approx(-degrees, abs=10)
    gray = cv2.cvtColor(tilted, cv2.COLOR_BGR2GRAY)
    straight = aligned_crop(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), upright.keypoints)
    levelled = aligned_crop(gray, face.keypoints)
    assert levelled.shape == (INPUT_SIZE, INPUT_SIZE)
    # The levelled crop of the tilted photo looks like the upright one's.
    corr = np.corrcoef(straight.ravel().astype(float), levelled.ravel().astype(float))[0, 1]
    assert corr > 0.8


def test_frontal_media_faces_pass_the_pose_checks(retina) -> None:  # type: ignore[no-untyped-def]
    for name in ("astronaut.png", "two_people.jpg", "obama.jpg", "biden.jpg"):
        image = photo(name)
        for face in retina.detect(image):
            assert face.keypoints is not None
            p = pose(face.keypoints, image.shape[1], image.shape[0])
            assert abs(p.yaw) < 0.25
            assert p.eye_mouth_ratio > 0.8
            assert p.inside == pytest.approx(1.0)


def test_profile_faces_of_the_clip_are_turned_away(retina) -> None:  # type: ignore[no-untyped-def]
    # Frame 240 of short_hamilton_clip.mp4: the audience, several heads in profile.
    capture = cv2.VideoCapture(str(MEDIA / "short_hamilton_clip.mp4"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 240)
    ok, frame = capture.read()
    capture.release()
    assert ok
    result = Pipeline(FakeClassifier(), retina).analyze(frame)
    qualities = [f.quality for f in result.faces]
    assert Quality.TURNED_AWAY in qualities
    # The frontal ones in the dim audience are judged on their light instead.
    assert any(q is not Quality.TURNED_AWAY for q in qualities)


def test_half_a_face_at_the_border_is_cut_off(retina) -> None:  # type: ignore[no-untyped-def]
    image = photo("two_people.jpg")
    left, right = retina.detect(image)
    # Keep the left 60 % of the right-hand face.
    cut = np.ascontiguousarray(image[:, : right.box.x + int(0.6 * right.box.w)])
    result = Pipeline(FakeClassifier(), retina).analyze(cut)
    assert result.faces[0].quality is Quality.OK
    assert result.faces[-1].quality in (Quality.CUT_OFF, Quality.TURNED_AWAY)


def test_aligned_pipeline_keeps_score_and_keypoints() -> None:
    detector = make_detector(BLAZEFACE_SHORT)
    result = Pipeline(FakeClassifier(), detector).analyze(photo("two_people.jpg"))
    assert len(result.faces) == 2
    for face in result.faces:
        assert face.quality is Quality.OK
        assert face.label is not None
        assert face.score is not None
        assert face.keypoints is not None


def test_without_alignment_the_box_crop_is_used(retina) -> None:  # type: ignore[no-untyped-def]
    image = photo("astronaut.png")
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    face = only_face(retina, image)
    aligned = Pipeline(FakeClassifier(), retina).crop(gray, face)
    boxed = Pipeline(FakeClassifier(), retina, align=False).crop(gray, face)
    assert aligned.shape == boxed.shape == (INPUT_SIZE, INPUT_SIZE)
    assert not np.array_equal(aligned, boxed)
