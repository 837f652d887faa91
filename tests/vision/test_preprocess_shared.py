"""Training and serving prepare a face the same way (shared.vision.preprocess)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from shared.vision.detect import HaarDetector
from shared.vision.preprocess import INPUT_SIZE, crop_face, square_box
from tests.conftest import MEDIA
from training.data import load_folder


def test_training_folder_loading_equals_the_serving_crop(tmp_path: Path) -> None:
    detector = HaarDetector()
    crops = []
    for i, name in enumerate(("obama.jpg", "biden.jpg", "astronaut.png")):
        image = cv2.imread(str(MEDIA / name))
        (box,) = [d.box for d in detector.detect(image)]
        # What a dataset folder would hold: the squared face region, as gray PNG.
        sq = square_box(box, image.shape[1], image.shape[0])
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        folder = tmp_path / "train" / ("happy" if i % 2 == 0 else "neutral")
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), gray[sq.y : sq.y + sq.h, sq.x : sq.x + sq.w])
        crops.append((i, crop_face(image, box)))
    split = load_folder(tmp_path, "Training")
    # load_folder goes happy/ then neutral/, each sorted by file name.
    order = [0, 2, 1]
    assert split.images.shape[1:3] == (INPUT_SIZE, INPUT_SIZE)
    for row, index in enumerate(order):
        served = dict(crops)[index]
        assert served.dtype == np.uint8
        assert served.shape == (INPUT_SIZE, INPUT_SIZE)
        assert np.array_equal(np.squeeze(split.images[row]), served)
    assert list(split.labels) == [3, 3, 6]  # happy, happy, neutral in FER2013 order
