"""Model builders behind one ``make_model(arch)``.

Every model takes (N, 48, 48, 1) float32 pixels in 0..255 and rescales inside,
so serving feeds exactly what the crop function produces. Augmentation is not
part of these graphs: it lives in the training input pipeline
(``training.augment``), so the exported serving graph is pure inference.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

import keras
from keras import layers

from shared.labels import NUM_CLASSES
from shared.vision.preprocess import INPUT_SHAPE


def _inputs() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input(shape=INPUT_SHAPE, name="pixels")
    return inputs, layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)


def thesis_cnn() -> keras.Model:
    """The thesis's Figure 8 network, layer for layer (32,116,743 parameters)."""
    inputs, x = _inputs()
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(256, 3, padding="valid", activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(1024, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="thesis")


def _conv_bn(x: keras.KerasTensor, filters: int, weight_decay: float) -> keras.KerasTensor:
    x = layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        kernel_regularizer=keras.regularizers.l2(weight_decay),
    )(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def _residual_block(
    x: keras.KerasTensor, filters: int, stride: int, weight_decay: float
) -> keras.KerasTensor:
    """Pre-activation-free basic ResNet block (two 3x3 convs + projection shortcut)."""
    reg = keras.regularizers.l2(weight_decay)
    shortcut = x
    y = layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False, kernel_regularizer=reg
    )(x)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg)(y)
    y = layers.BatchNormalization()(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(
            filters, 1, strides=stride, use_bias=False, kernel_regularizer=reg
        )(shortcut)
        shortcut = layers.BatchNormalization()(shortcut)
    return layers.Activation("relu")(layers.Add()([y, shortcut]))


def resnet_small(width: int = 32, weight_decay: float = 5e-4, dropout: float = 0.4) -> keras.Model:
    """A compact ResNet for 48x48 faces: stem, three stages (48→24→12→6), GAP head.

    Deep enough to beat the thesis CNN by a wide margin with ~40x fewer
    parameters, and cheap enough to train for tens of epochs on two CPU cores.
    """
    inputs, x = _inputs()
    x = _conv_bn(x, width, weight_decay)
    x = _residual_block(x, width, 1, weight_decay)
    x = _residual_block(x, width * 2, 2, weight_decay)
    x = _residual_block(x, width * 2, 1, weight_decay)
    x = _residual_block(x, width * 4, 2, weight_decay)
    x = _residual_block(x, width * 4, 1, weight_decay)
    x = _residual_block(x, width * 8, 2, weight_decay)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="resnet_small")


def resnet18(width: int = 64, weight_decay: float = 5e-4, dropout: float = 0.4) -> keras.Model:
    """ResNet-18 for 48x48 faces: a 3x3 stem, four stages of two basic blocks (48→24→12→6).

    11.2 M parameters and about 11 times vgg_bn's compute per face: a teacher
    trained on a GPU (``training.accelerator``), too slow to serve by default.
    """
    inputs, x = _inputs()
    x = _conv_bn(x, width, weight_decay)
    for stage, multiplier in enumerate((1, 2, 4, 8)):
        x = _residual_block(x, width * multiplier, 2 if stage else 1, weight_decay)
        x = _residual_block(x, width * multiplier, 1, weight_decay)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="resnet18")


def vgg_bn(width: int = 32, weight_decay: float = 5e-4, dropout: float = 0.4) -> keras.Model:
    """VGG-style: four blocks of two conv-BN-ReLU + max-pool, GAP + dense head."""
    inputs, x = _inputs()
    for multiplier in (1, 2, 4, 8):
        x = _conv_bn(x, width * multiplier, weight_decay)
        x = _conv_bn(x, width * multiplier, weight_decay)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="vgg_bn")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "thesis": thesis_cnn,
    "resnet_small": resnet_small,
    "vgg_bn": vgg_bn,
    # vgg_bn at 1.5x width (2.7 M parameters): more capacity for a network
    # that underfits at 1.2 M, twice the training time per epoch.
    "vgg_bn_wide": partial(vgg_bn, width=48),
    # 1.25x width (1.9 M parameters, about 1.6x the compute): a student that
    # still serves over 300 faces/s on one core in int8.
    "vgg_bn_40": partial(vgg_bn, width=40),
    # Twice the width (4.8 M parameters, 4x the compute), VGG-13-like: the served
    # default, trained on a GPU (serving it with flip TTA for unsure faces only
    # keeps it over 300 faces/s a core).
    "vgg_bn_64": partial(vgg_bn, width=64),
    "resnet18": resnet18,
}
#: The architecture ``classpulse train`` uses unless told otherwise.
DEFAULT_ARCH = "vgg_bn"


def make_model(
    arch: str = DEFAULT_ARCH, weight_decay: float | None = None, dropout: float | None = None
) -> keras.Model:
    """Build an untrained model by architecture name.

    ``weight_decay`` and ``dropout`` override the L2 penalty and the head's
    dropout rate of the architectures that have them (the thesis CNN is built
    as published); they change training only, never the weights' shapes, so a
    checkpoint of the architecture loads into the result.
    """
    try:
        builder = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(
            f"unknown architecture {arch!r}; choose one of {', '.join(sorted(ARCHITECTURES))}"
        ) from None
    accepted = inspect.signature(builder).parameters
    overrides = {
        name: value
        for name, value in (("weight_decay", weight_decay), ("dropout", dropout))
        if value is not None and name in accepted
    }
    return builder(**overrides)
