"""Face crop to model input: the one function training and serving share.

FER2013 images are 48x48 grayscale crops of roughly the Haar face box. Serving
crops the detected box with a small margin, squares it, converts to gray and
resizes to 48x48 with area interpolation; training applies the same
``to_model_input`` to every image it loads from a folder. Pixel values stay
uint8 0..255: rescaling happens inside the model, so it cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from shared.vision import opencv

#: Side of the square model input, as in FER2013.
INPUT_SIZE = 48
#: Shape of one model input sample (height, width, channels).
INPUT_SHAPE: tuple[int, int, int] = (INPUT_SIZE, INPUT_SIZE, 1)
#: Bumped whenever the crop or the pixel format changes; model artifacts record
#: it and loading refuses a model trained with a different preprocessing.
PREPROCESSING_VERSION = "gray48-area-margin0.1-v1"
#: Extra context around the Haar box on each side, as a fraction of its size.
#: Haar boxes are slightly tighter than FER2013's crops around the face.
DEFAULT_MARGIN = 0.1

GrayImage = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Box:
    """A face box in pixel coordinates of the full frame."""

    x: int
    y: int
    w: int
    h: int


def to_gray(image: npt.NDArray[np.uint8]) -> GrayImage:
    """Grayscale view of a BGR, BGRA or already-gray uint8 image."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        return opencv.convert_color(image, cv2.COLOR_BGRA2GRAY)
    if image.ndim == 3 and image.shape[2] == 3:
        return opencv.convert_color(image, cv2.COLOR_BGR2GRAY)
    raise ValueError(f"expected a gray, BGR or BGRA image, got shape {image.shape}")


def to_model_input(image: npt.NDArray[np.uint8]) -> GrayImage:
    """A whole face image (already cropped) as a 48x48 uint8 gray array."""
    gray = to_gray(image)
    if gray.shape == (INPUT_SIZE, INPUT_SIZE):
        return np.ascontiguousarray(gray)
    interpolation = cv2.INTER_AREA if min(gray.shape) >= INPUT_SIZE else cv2.INTER_LINEAR
    return opencv.resize(gray, (INPUT_SIZE, INPUT_SIZE), interpolation=interpolation)


def square_box(box: Box, frame_w: int, frame_h: int, margin: float = DEFAULT_MARGIN) -> Box:
    """Grow ``box`` by ``margin`` on each side, make it square, clip to the frame."""
    side = int(round(max(box.w, box.h) * (1.0 + 2.0 * margin)))
    side = max(1, min(side, frame_w, frame_h))
    cx = box.x + box.w / 2.0
    cy = box.y + box.h / 2.0
    x = int(round(cx - side / 2.0))
    y = int(round(cy - side / 2.0))
    x = min(max(0, x), frame_w - side)
    y = min(max(0, y), frame_h - side)
    return Box(x, y, side, side)


def crop_face(image: npt.NDArray[np.uint8], box: Box, margin: float = DEFAULT_MARGIN) -> GrayImage:
    """Crop a detected face with margin, square it and return the 48x48 model input."""
    frame_h, frame_w = image.shape[:2]
    sq = square_box(box, frame_w, frame_h, margin)
    # Cropped first, then turned gray: the same pixels for a fraction of the work.
    return to_model_input(image[sq.y : sq.y + sq.h, sq.x : sq.x + sq.w])


def zoom_inputs(batch: npt.NDArray[np.float32], zoom: float) -> npt.NDArray[np.float32]:
    """(N, 48, 48, 1) model inputs magnified about their centre by ``zoom`` (bilinear,
    edges replicated), as training's zoom augmentation draws them."""
    if zoom == 1.0:
        return batch
    centre = (INPUT_SIZE - 1) / 2.0
    matrix = cv2.getRotationMatrix2D((centre, centre), 0.0, zoom)
    size = (INPUT_SIZE, INPUT_SIZE)
    zoomed = [
        cv2.warpAffine(
            crop[:, :, 0], matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        for crop in batch
    ]
    return np.stack(zoomed).astype(np.float32)[..., np.newaxis]


def stack_inputs(faces: list[GrayImage]) -> npt.NDArray[np.float32]:
    """Batch 48x48 uint8 crops as float32 (N, 48, 48, 1) in 0..255 for the model."""
    if not faces:
        return np.zeros((0, *INPUT_SHAPE), dtype=np.float32)
    return np.stack(faces).astype(np.float32)[..., np.newaxis]
