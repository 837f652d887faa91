"""Awkward frames through decode → detect → align → quality → classify, for every detector.

Each gives a result (faces, or no face) or a clear ``InvalidFrame`` reason, as
the worker stores it; none raises anything else. Real photos wherever a face
is expected.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shared.errors import InvalidFrame
from shared.vision.decode import decode_reduced
from shared.vision.detect import DETECTORS, RETINAFACE, make_detector
from shared.vision.pipeline import FrameResult, Pipeline
from shared.vision.quality import Quality
from tests.conftest import MEDIA
from tests.vision.test_pipeline import FakeClassifier

PHOTOS = ("astronaut.png", "obama.jpg", "biden.jpg", "two_people.jpg", "meds-aa-S001-01.jpg")


@pytest.fixture(scope="module", params=DETECTORS)
def pipeline(request: pytest.FixtureRequest) -> Pipeline:
    return Pipeline(FakeClassifier(), make_detector(request.param))


def photo(name: str) -> np.ndarray:
    return cv2.imread(str(MEDIA / name))


def jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def run(pipeline: Pipeline, data: bytes, min_face: float = 0.1) -> FrameResult | str:
    """What the worker would store: the result, or the failed reason."""
    try:
        decoded = decode_reduced(data, min_face, max_pixels=4096 * 4096)
    except InvalidFrame as exc:
        return exc.reason
    return pipeline.analyze(decoded.image, (decoded.width, decoded.height))


def check(result: FrameResult | str) -> FrameResult:
    assert isinstance(result, FrameResult), result
    for face in result.faces:
        assert 0 <= face.box.x
        assert face.box.x + face.box.w <= result.width
        assert 0 <= face.box.y
        assert face.box.y + face.box.h <= result.height
        assert (face.label is not None) == (face.quality is Quality.OK)
    return result


def test_a_photo_without_a_face_is_no_face(pipeline: Pipeline) -> None:
    # The suits below the faces of two_people.jpg: real pixels, no face.
    image = photo("two_people.jpg")[300:, :]
    assert check(run(pipeline, jpeg(np.ascontiguousarray(image)))).no_face


@pytest.mark.parametrize("value", [0, 255])
def test_all_black_and_all_white_frames_are_no_face(pipeline: Pipeline, value: int) -> None:
    image = np.full((480, 640, 3), value, np.uint8)
    assert check(run(pipeline, jpeg(image))).no_face


def thirty_faces() -> np.ndarray:
    """A 6x5 grid of the media photos, each tile 320x216 of a 1920x1080 frame."""
    tiles = []
    for i in range(30):
        image = photo(PHOTOS[i % len(PHOTOS)])
        h, w = image.shape[:2]
        scale = min(320 / w, 216 / h)
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        tile = np.full((216, 320, 3), 128, np.uint8)
        tile[: small.shape[0], : small.shape[1]] = small
        tiles.append(tile)
    return np.ascontiguousarray(np.vstack([np.hstack(tiles[r * 6 : r * 6 + 6]) for r in range(5)]))


def test_thirty_faces_in_one_frame_give_a_result(pipeline: Pipeline) -> None:
    # At the default smallest face (1/10 of 1080 px) these 33-57 px faces are too small.
    assert len(check(run(pipeline, jpeg(thirty_faces()))).faces) <= 30


def test_the_gallery_detector_finds_the_thirty_faces() -> None:
    # RetinaFace told to look for faces down to 3 % of the height (32 px here).
    gallery = Pipeline(FakeClassifier(), make_detector(RETINAFACE, min_face_fraction=0.03))
    result = check(run(gallery, jpeg(thirty_faces()), min_face=0.03))
    assert 28 <= len(result.faces) <= 30
    assert sum(f.label is not None for f in result.faces) >= 20


def test_a_face_cut_by_the_border_gives_a_result(pipeline: Pipeline) -> None:
    image = photo("obama.jpg")
    result = check(run(pipeline, jpeg(np.ascontiguousarray(image[:, 480:]))))
    assert all(f.quality is not Quality.TOO_DARK for f in result.faces)


@pytest.mark.parametrize("turn", [cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE])
def test_a_photo_turned_90_degrees_gives_a_result(pipeline: Pipeline, turn: int) -> None:
    result = check(run(pipeline, jpeg(cv2.rotate(photo("meds-aa-S001-01.jpg"), turn))))
    assert (result.width, result.height) == (600, 480)


def test_a_grayscale_jpeg_finds_what_the_colour_one_finds(pipeline: Pipeline) -> None:
    image = photo("two_people.jpg")
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    ok, data = cv2.imencode(".jpg", gray)
    assert ok
    assert len(check(run(pipeline, data.tobytes())).faces) == 2


def test_a_tiny_frame_gives_a_result(pipeline: Pipeline) -> None:
    image = cv2.resize(photo("astronaut.png"), (64, 48), interpolation=cv2.INTER_AREA)
    result = check(run(pipeline, jpeg(image)))
    assert all(f.quality is Quality.TOO_SMALL for f in result.faces)


def test_an_8k_frame_is_refused_with_its_reason(pipeline: Pipeline) -> None:
    # 7680x4320 is over the default 4096x4096-pixel limit: refused from the header.
    image = cv2.resize(photo("two_people.jpg"), (7680, 4320), interpolation=cv2.INTER_LINEAR)
    assert run(pipeline, jpeg(image)) == "too_many_pixels"


def test_an_8k_frame_under_a_raised_limit_decodes_at_an_eighth(pipeline: Pipeline) -> None:
    image = cv2.resize(photo("two_people.jpg"), (7680, 4320), interpolation=cv2.INTER_LINEAR)
    decoded = decode_reduced(jpeg(image), 0.1, max_pixels=7680 * 4320)
    assert decoded.image.shape == (540, 960, 3)
    result = check(pipeline.analyze(decoded.image, (decoded.width, decoded.height)))
    assert (result.width, result.height) == (7680, 4320)
    assert len(result.faces) == 2
    assert min(f.box.w for f in result.faces) > 500  # in the frame's own pixels


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff" + b"\x00" * 50, b"GIF89a...."])
def test_broken_bytes_fail_with_a_reason(pipeline: Pipeline, data: bytes) -> None:
    assert run(pipeline, data) in ("empty", "truncated", "undecodable", "unsupported_format")
