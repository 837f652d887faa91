"""Haar detection on the media photos, mapped back to full resolution."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shared.vision.detect import HaarDetector
from tests.conftest import MEDIA


@pytest.fixture(scope="module")
def detector() -> HaarDetector:
    return HaarDetector()


@pytest.mark.parametrize(
    ("name", "faces"),
    [
        ("astronaut.png", 1),
        ("two_people.jpg", 2),
        ("obama.jpg", 1),
        ("biden.jpg", 1),
        ("meds-aa-S001-01.jpg", 1),
        ("meds-aa-S029-01.jpg", 1),
        ("meds-af-S419-01.jpg", 1),
    ],
)
def test_finds_the_faces_of_the_media_photos(detector: HaarDetector, name: str, faces: int) -> None:
    image = cv2.imread(str(MEDIA / name))
    boxes = [d.box for d in detector.detect(image)]
    assert len(boxes) == faces
    height, width = image.shape[:2]
    for box in boxes:
        # Full-resolution coordinates, inside the frame, roughly square.
        assert 0 <= box.x
        assert box.x + box.w <= width
        assert 0 <= box.y
        assert box.y + box.h <= height
        assert 0.8 < box.w / box.h < 1.25
    assert [b.x for b in boxes] == sorted(b.x for b in boxes)


def test_astronaut_face_box_is_where_the_face_is(detector: HaarDetector) -> None:
    (box,) = [d.box for d in detector.detect(cv2.imread(str(MEDIA / "astronaut.png")))]
    # skimage's astronaut: the face spans roughly x 170-275, y 60-165 of 512x512.
    centre = (box.x + box.w / 2, box.y + box.h / 2)
    assert 190 < centre[0] < 250
    assert 85 < centre[1] < 140
    assert 70 < box.w < 140


def test_two_people_boxes_are_far_apart(detector: HaarDetector) -> None:
    left, right = [d.box for d in detector.detect(cv2.imread(str(MEDIA / "two_people.jpg")))]
    assert right.x - left.x > 300


@pytest.mark.parametrize("value", [0, 128, 255])
def test_blank_frames_have_no_face(detector: HaarDetector, value: int) -> None:
    assert detector.detect(np.full((480, 640, 3), value, dtype=np.uint8)) == []


def test_tiny_frame_has_no_face(detector: HaarDetector) -> None:
    assert detector.detect(np.full((10, 10), 128, dtype=np.uint8)) == []


def test_a_webcam_sized_face_is_found_in_a_640x480_frame(detector: HaarDetector) -> None:
    # The obama portrait shrunk so the face is 1/6 of the frame height, on gray.
    image = cv2.imread(str(MEDIA / "obama.jpg"))
    (full,) = [d.box for d in detector.detect(image)]
    scale = (480 / 6) / full.h
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 128, dtype=np.uint8)
    h, w = min(480, small.shape[0]), min(640, small.shape[1])
    frame[:h, :w] = small[:h, :w]
    (box,) = [d.box for d in detector.detect(frame)]
    assert abs(box.h - 80) < 25
