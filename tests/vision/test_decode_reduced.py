"""Large JPEGs decoded at reduced size; faces reported in the frame's own pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shared.vision.decode import decode_reduced, reduction_for
from shared.vision.detect import RETINAFACE, make_detector
from shared.vision.pipeline import Pipeline
from tests.conftest import MEDIA
from tests.vision.test_pipeline import FakeClassifier

#: The default frame limit (``CLASSPULSE_MAX_FRAME_PIXELS``).
MAX_PIXELS = 4096 * 4096


def frame_bytes(width: int, height: int, ext: str = ".jpg") -> bytes:
    """two_people.jpg scaled into a width x height frame, encoded."""
    image = cv2.imread(str(MEDIA / "two_people.jpg"))
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 128, np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    ok, data = cv2.imencode(ext, canvas)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(
    ("size", "fraction", "factor"),
    [
        ((640, 480), 0.1, 1),
        ((1280, 720), 0.1, 1),
        ((1920, 1080), 0.1, 2),
        ((3840, 2160), 0.1, 4),
        ((7680, 4320), 0.1, 8),
        ((1920, 1080), 0.04, 1),
    ],
)
def test_reduction_keeps_the_smallest_face_at_48_px(
    size: tuple[int, int], fraction: float, factor: int
) -> None:
    assert reduction_for(*size, fraction) == factor


def test_a_1080p_jpeg_decodes_at_half_size_and_faces_map_back() -> None:
    data = frame_bytes(1920, 1080)
    decoded = decode_reduced(data, 0.1, MAX_PIXELS)
    assert decoded.image.shape == (540, 960, 3)
    assert (decoded.width, decoded.height) == (1920, 1080)
    assert decoded.reduction == 2.0
    pipeline = Pipeline(FakeClassifier(), make_detector(RETINAFACE))
    reduced = pipeline.analyze(decoded.image, (decoded.width, decoded.height))
    full = pipeline.analyze(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    assert (reduced.width, reduced.height) == (full.width, full.height) == (1920, 1080)
    assert len(reduced.faces) == len(full.faces) == 2
    for a, b in zip(reduced.faces, full.faces, strict=True):
        assert abs(a.box.x - b.box.x) < 0.1 * b.box.w
        assert abs(a.box.w - b.box.w) < 0.15 * b.box.w
        assert a.keypoints is not None
        assert b.keypoints is not None
        assert abs(a.keypoints.nose[0] - b.keypoints.nose[0]) < 0.1 * b.box.w


def test_png_and_small_frames_decode_at_full_size() -> None:
    png = decode_reduced(frame_bytes(1920, 1080, ".png"), 0.1, MAX_PIXELS)
    assert png.image.shape == (1080, 1920, 3)
    small = decode_reduced(frame_bytes(640, 480), 0.1, MAX_PIXELS)
    assert small.image.shape == (480, 640, 3)
    assert small.reduction == 1.0
