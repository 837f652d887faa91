"""The training augmentation: random erasing puts a box of noise into the share of images asked."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from training.augment import make_augmenter  # noqa: E402


@pytest.mark.parametrize(("erasing", "boxed"), [(0.0, 0), (1.0, 16)])
def test_random_erasing_boxes_the_share_of_images_asked(erasing: float, boxed: int) -> None:
    # A flat gray face stays flat under flips, shifts, rotations, zoom (nearest fill),
    # brightness and contrast: only an erased box of noise makes its pixels differ.
    flat = np.full((16, 48, 48, 1), 128.0, dtype=np.float32)
    out = np.asarray(make_augmenter(7, erasing)(flat, training=True))
    varied = int((out.reshape(16, -1).std(axis=1) > 1.0).sum())
    assert varied == boxed
    assert out.min() >= 0.0
    assert out.max() <= 255.0
