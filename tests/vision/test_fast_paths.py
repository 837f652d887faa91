"""The detector's and the crops' faster paths give the very pixels of the plain ones."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from shared.vision.align import aligned_crop
from shared.vision.blazeface import letterbox
from shared.vision.detect import BLAZEFACE_FULL, BOX_FACTORS, block_mean, make_detector, shrink
from shared.vision.preprocess import crop_face
from tests.conftest import MEDIA

PHOTOS = ("two_people.jpg", "obama.jpg", "meds-aa-S029-01.jpg", "astronaut.png")


def photo(name: str) -> npt.NDArray[np.uint8]:
    return np.asarray(cv2.imread(str(MEDIA / name)), dtype=np.uint8)


def webcam_frame(name: str) -> npt.NDArray[np.uint8]:
    """A media photo squeezed to 640x480, the benchmark's webcam size."""
    resized = cv2.resize(photo(name), (640, 480), interpolation=cv2.INTER_AREA)
    return np.asarray(resized, dtype=np.uint8)


def area(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = image.shape[0] // factor, image.shape[1] // factor
    return cv2.resize(image[: h * factor, : w * factor], (w, h), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("factor", BOX_FACTORS)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_block_mean_equals_inter_area(name: str, factor: int, channels: int) -> None:
    image = photo(name)
    if channels != 3:
        code = cv2.COLOR_BGR2GRAY if channels == 1 else cv2.COLOR_BGR2BGRA
        image = np.asarray(cv2.cvtColor(image, code), dtype=np.uint8)
    # An odd width and height: the blocks cut by the edge are dropped as INTER_AREA's are.
    image = np.ascontiguousarray(image[: image.shape[0] - 1, : image.shape[1] - 2])
    np.testing.assert_array_equal(block_mean(image, factor), area(image, factor))


def test_block_mean_refuses_even_factors() -> None:
    with pytest.raises(ValueError, match="odd"):
        block_mean(photo("obama.jpg"), 4)


def test_shrink_of_a_640x480_frame_is_area_then_bilinear() -> None:
    frame = webcam_frame("two_people.jpg")
    expected = cv2.resize(area(frame, 3), (192, 144), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(shrink(frame, 192, 144), expected)


def test_letterbox_scales_pixels_to_minus_one_to_one() -> None:
    frame = webcam_frame("obama.jpg")
    tensor, scale, pad_x, pad_y = letterbox(frame, 192)
    assert (scale, pad_x, pad_y) == (0.3, 0.0, 24.0)
    rgb = cv2.cvtColor(shrink(frame, 192, 144), cv2.COLOR_BGR2RGB)
    expected = (rgb * (1.0 / 127.5) - 1.0).astype(np.float32)
    np.testing.assert_array_equal(tensor[0, 24:168], expected)
    assert (tensor[0, :24] == -1.0).all()
    assert (tensor[0, 168:] == -1.0).all()


def test_crops_of_a_colour_frame_equal_those_of_its_gray_copy() -> None:
    image = photo("two_people.jpg")
    gray = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    faces = make_detector(BLAZEFACE_FULL).detect(image)
    assert len(faces) == 2
    for face in faces:
        assert face.keypoints is not None
        np.testing.assert_array_equal(
            aligned_crop(image, face.keypoints), aligned_crop(gray, face.keypoints)
        )
        np.testing.assert_array_equal(crop_face(image, face.box), crop_face(gray, face.box))
