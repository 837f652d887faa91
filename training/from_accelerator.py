"""Keras models from the weights ``training.accelerator`` trained on a GPU.

The accelerator writes each network's weights in the order Keras's builders
(``training.models``) create them; here they are loaded into those builders
so that export, int8 quantization, scoring and ``classpulse train --resume``
work on them as on any other run.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import ModelArtifactError
from shared.labels import LABELS
from shared.vision.artifact import ModelMetadata
from shared.vision.preprocess import INPUT_SHAPE, PREPROCESSING_VERSION
from training.accelerator import load_weights
from training.data import Split, data_hash
from training.export import publish_metadata, write_served_model

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
    # Built in float32 without changing the caller's policy (a bfloat16 run that
    # starts from these weights goes on in bfloat16).
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        model = make_model(arch)
    finally:
        keras.mixed_precision.set_global_policy(policy)
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
                    f"{weights}: not weights of {arch!r}: layer {keras_layer.name} "
                    f"expects {shapes}, got {[v.shape for v in values]}"
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


def history_path(weights: Path) -> Path:
    """The per-epoch history ``training.accelerator`` writes beside a weights file."""
    return weights.with_name(weights.name.removesuffix(".npz") + ".history.json")


def export_weights(
    weights: Path, out: Path, train: Split, val: Split, *, tta: str = "flip", quantize: bool = True
) -> Path:
    """Write the model artifact of an accelerator weights file to ``out``; returns ``out``.

    As ``classpulse train`` does for its runs: ``model.keras`` (float32),
    ``model.onnx`` (int8 calibrated on ``train`` unless ``quantize`` is off)
    and metadata with PublicTest figures measured through the serving code.
    """
    arch = architecture(weights)
    model = keras_model(weights)
    precision = write_served_model(model, out, train if quantize else None)
    history = history_path(weights)
    epochs = len(json.loads(history.read_text())) if history.is_file() else 0
    created = dt.datetime.now(dt.UTC)
    meta = ModelMetadata(
        version=f"{arch}-{created:%Y%m%d-%H%M%S}" + ("-int8" if precision == "int8" else ""),
        architecture=arch,
        labels=list(LABELS),
        input_shape=list(INPUT_SHAPE),
        preprocessing=PREPROCESSING_VERSION,
        training_data_sha256=data_hash(train, val),
        epochs=epochs,
        tta=tta,
        precision=precision,
        parameters=int(model.count_params()),
        created_at=created.isoformat(timespec="seconds"),
        metrics={"trained_by": "training.accelerator", "weights": weights.name},
    )
    return publish_metadata(out, meta, val)
