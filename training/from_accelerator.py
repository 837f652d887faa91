"""Keras models from the weights ``training.accelerator`` trained on a GPU.

The accelerator writes each network's weights in the order Keras's builders
(``training.models``) create them; here they are loaded into those builders
so that export, int8 quantization, scoring and ``classpulse train --resume``
work on them as on any other run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import ModelArtifactError
from training.accelerator import load_weights

#: Each Keras layer kind's weights, in Keras's order, by their accelerator names.
_KERAS_ORDER = {
    "Conv2D": ("kernel",),
    "BatchNormalization": ("gamma", "beta", "mean", "var"),
    "Dense": ("kernel", "bias"),
}


def keras_model(weights: Path) -> Any:
    """The float32 Keras model of an accelerator weights file (whole or in parts)."""
    import keras

    from training.models import make_model

    arch, layers = load_weights(weights)
    keras.mixed_precision.set_global_policy("float32")
    model = make_model(arch)
    # The accelerator lists layers in the order the builders create them; a
    # functional model lists them topologically (a block's shortcut after its
    # second conv). Within one layer kind Keras's automatic names count up in
    # creation order, so the two are matched kind by kind.
    by_kind: dict[str, list[Any]] = {}
    for layer in model.layers:
        if layer.weights:
            by_kind.setdefault(type(layer).__name__, []).append(layer)
    planned: dict[str, list[dict[str, np.ndarray]]] = {}
    for arrays in layers:
        kind = (
            "BatchNormalization" if "gamma" in arrays else "Dense" if "bias" in arrays else "Conv2D"
        )
        planned.setdefault(kind, []).append(arrays)
    if {k: len(v) for k, v in by_kind.items()} != {k: len(v) for k, v in planned.items()}:
        raise ModelArtifactError(f"{weights}: its layers do not match architecture {arch!r}")
    for kind, keras_layers in by_kind.items():
        for keras_layer, arrays in zip(
            sorted(keras_layers, key=_creation_order), planned[kind], strict=True
        ):
            values = [np.asarray(arrays[name], dtype=np.float32) for name in _KERAS_ORDER[kind]]
            shapes = [tuple(w.shape) for w in keras_layer.weights]
            if shapes != [v.shape for v in values]:
                raise ModelArtifactError(
                    f"{weights}: layer {keras_layer.name} expects {shapes}, "
                    f"got {[v.shape for v in values]}"
                )
            keras_layer.set_weights(values)
    return model


#: Keras's automatic name of each layer kind (``conv2d``, ``conv2d_1``, …).
_AUTO_NAMES = {"Conv2D": "conv2d", "BatchNormalization": "batch_normalization", "Dense": "dense"}


def _creation_order(layer: Any) -> tuple[int, int]:
    """Keras names layers ``conv2d``, ``conv2d_1``, … as it creates them; named ones come last."""
    base = _AUTO_NAMES[type(layer).__name__]
    if layer.name == base:
        return (0, 0)
    suffix = layer.name.removeprefix(base + "_")
    return (0, int(suffix)) if suffix.isdigit() else (1, 0)


def architecture(weights: Path) -> str:
    """The architecture name a weights file was trained as."""
    return load_weights(weights)[0]
