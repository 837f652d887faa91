"""Training-time augmentation, applied in the tf.data input pipeline.

Geometric and photometric jitter that a webcam face plausibly shows: mirror,
small shifts, rotations and zoom, brightness and contrast. It never runs at
serving time; the serving graph only rescales.
"""

from __future__ import annotations

import keras
from keras import layers


def make_augmenter(seed: int, random_erasing: float = 0.0) -> keras.Sequential:
    """The augmentation stack; call it with ``training=True`` on uint8-valued floats.

    ``random_erasing`` is the share of images that get a box of noise (sides 10–50 %
    of the image's), as the GPU recipe of training.accelerator does: a face half
    hidden by a hand or a mug still has an expression.
    """
    stack = [
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 1),
        layers.RandomRotation(0.04, fill_mode="nearest", seed=seed + 2),  # ±15°
        layers.RandomZoom(0.1, fill_mode="nearest", seed=seed + 3),
        layers.RandomBrightness(0.2, value_range=(0.0, 255.0), seed=seed + 4),
        layers.RandomContrast(0.2, value_range=(0.0, 255.0), seed=seed + 5),
    ]
    if random_erasing > 0:
        stack.append(
            layers.RandomErasing(
                factor=(random_erasing, random_erasing),
                scale=(0.1, 0.5),
                value_range=(0.0, 255.0),
                seed=seed + 6,
            )
        )
    return keras.Sequential(stack, name="augment")
