"""The CNN detectors (BlazeFace, RetinaFace) on the media photos: boxes, scores, keypoints."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shared.vision.blazeface import FULL_RANGE, SHORT_RANGE, ssd_anchor_centres
from shared.vision.detect import (
    BLAZEFACE_FULL,
    BLAZEFACE_SHORT,
    DETECTORS,
    HAAR,
    RETINAFACE,
    FaceDetector,
    HaarDetector,
    make_detector,
)
from shared.vision.nms import nms, weighted_nms
from shared.vision.retinaface import priors
from tests.conftest import MEDIA

CNN = (BLAZEFACE_SHORT, BLAZEFACE_FULL, RETINAFACE)
PHOTOS = {
    "astronaut.png": 1,
    "two_people.jpg": 2,
    "obama.jpg": 1,
    "biden.jpg": 1,
    "meds-aa-S001-01.jpg": 1,
    "meds-aa-S029-01.jpg": 1,
    "meds-af-S419-01.jpg": 1,
}


@pytest.fixture(scope="module", params=CNN)
def detector(request: pytest.FixtureRequest) -> FaceDetector:
    return make_detector(request.param)


def photo(name: str) -> np.ndarray:
    return cv2.imread(str(MEDIA / name))


def test_anchor_counts_match_the_models() -> None:
    assert len(ssd_anchor_centres(SHORT_RANGE)) == 896  # 16x16x2 + 8x8x6
    assert len(ssd_anchor_centres(FULL_RANGE)) == 2304  # 48x48x1
    # RetinaFace: two priors per cell at strides 8, 16, 32 of a 640x480 input.
    assert len(priors(480, 640)) == 2 * (80 * 60 + 40 * 30 + 20 * 15)


def test_short_range_anchors_follow_mediapipe_order() -> None:
    centres = ssd_anchor_centres(SHORT_RANGE)
    # First layer: 16x16 cells, two anchors each, row by row.
    assert tuple(centres[0]) == tuple(centres[1]) == (0.5 / 16, 0.5 / 16)
    assert tuple(centres[2]) == (1.5 / 16, 0.5 / 16)
    # Then the three stride-16 layers share one 8x8 map: six anchors per cell.
    assert np.allclose(centres[512:518], (0.5 / 8, 0.5 / 8))


@pytest.mark.parametrize(("name", "faces"), PHOTOS.items())
def test_finds_the_faces_of_the_media_photos(detector: FaceDetector, name: str, faces: int) -> None:
    image = photo(name)
    found = detector.detect(image)
    assert len(found) == faces
    height, width = image.shape[:2]
    for face in found:
        box, kp = face.box, face.keypoints
        assert face.score is not None
        assert 0.5 <= face.score <= 1.0
        assert kp is not None
        assert 0 <= box.x
        assert box.x + box.w <= width
        assert 0 <= box.y
        assert box.y + box.h <= height
        # Upright faces: the person's right eye is on the image's left, the
        # nose between and below the eyes, the mouth below the nose.
        assert kp.right_eye[0] < kp.nose[0] < kp.left_eye[0]
        assert max(kp.right_eye[1], kp.left_eye[1]) < kp.nose[1] < kp.mouth[1]
        for x, y in (kp.right_eye, kp.left_eye, kp.nose, kp.mouth):
            assert box.x <= x <= box.x + box.w
            assert box.y <= y <= box.y + box.h
        assert face.visible == pytest.approx(1.0)
    assert [f.box.x for f in found] == sorted(f.box.x for f in found)


@pytest.mark.parametrize("name", list(PHOTOS))
def test_cnn_boxes_agree_with_haar(detector: FaceDetector, name: str) -> None:
    image = photo(name)
    haar = [d.box for d in HaarDetector().detect(image)]
    cnn = [d.box for d in detector.detect(image)]
    for a, b in zip(haar, cnn, strict=True):
        x0, y0 = max(a.x, b.x), max(a.y, b.y)
        x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
        inter = max(0, x1 - x0) * max(0, y1 - y0)
        assert inter / (a.w * a.h + b.w * b.h - inter) > 0.5


@pytest.mark.parametrize("value", [0, 128, 255])
def test_blank_frames_have_no_face(detector: FaceDetector, value: int) -> None:
    assert detector.detect(np.full((480, 640, 3), value, dtype=np.uint8)) == []


def test_gray_and_bgra_frames_give_the_same_faces(detector: FaceDetector) -> None:
    image = photo("astronaut.png")
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    assert len(detector.detect(gray)) == 1
    assert [d.box for d in detector.detect(bgra)] == [d.box for d in detector.detect(image)]


def test_face_cut_by_the_border_is_clipped_and_marked(detector: FaceDetector) -> None:
    # The obama portrait with the left 40 % of the face cut away.
    image = photo("obama.jpg")
    (whole,) = detector.detect(image)
    cut = np.ascontiguousarray(image[:, whole.box.x + int(0.4 * whole.box.w) :])
    found = detector.detect(cut)
    if found:  # a detector may also give up on half a face; if it reports it:
        (face,) = found
        assert face.box.x < 0.1 * face.box.w
        # BlazeFace boxes the whole face and says how much is outside;
        # RetinaFace boxes what it sees, and its right eye lies outside.
        assert face.keypoints is not None
        assert face.visible < 0.9 or face.keypoints.right_eye[0] < 0


def test_unknown_detector_name_is_refused() -> None:
    with pytest.raises(ValueError, match="haar"):
        make_detector("yolo")
    assert set(DETECTORS) == {HAAR, *CNN}


def test_weighted_nms_averages_a_cluster_and_keeps_the_best_score() -> None:
    rows = np.array(
        [[0, 0, 10, 10, 5, 5], [1, 1, 11, 11, 6, 6], [50, 50, 60, 60, 55, 55]], np.float32
    )
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    merged, kept = weighted_nms(rows, scores, 0.3)
    assert kept.tolist() == pytest.approx([0.9, 0.7])
    assert merged[0].tolist() == pytest.approx([0.4, 0.4, 10.4, 10.4, 5.4, 5.4])
    assert merged[1].tolist() == rows[2].tolist()
    plain, plain_scores = nms(rows, scores, 0.3)
    assert plain.tolist() == rows[[0, 2]].tolist()
    assert plain_scores.tolist() == pytest.approx([0.9, 0.7])
