"""Turn a trained Keras checkpoint into the served model artifact.

The artifact holds ``model.keras`` (float32), ``model.onnx`` (what the worker
runs with ONNX Runtime, float32 or int8) and ``metadata.json``; its PublicTest metrics are
measured through the ONNX model with the serving code, not taken from Keras.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from shared.errors import ModelArtifactError
from shared.labels import LABELS
from shared.vision.artifact import (
    KERAS_FILE,
    ONNX_FILE,
    ModelMetadata,
    read_metadata,
    write_metadata,
)
from shared.vision.preprocess import INPUT_SHAPE, PREPROCESSING_VERSION
from training.calibration import calibrate_artifact
from training.data import Split
from training.quantize import calibration_batches, quantize_onnx

log = logging.getLogger("classpulse.export")


def export_onnx(model: Any, path: Path) -> Path:
    """Write ``model`` as ONNX with a dynamic batch dimension."""
    import numpy as np

    # Keras exports only a model that has been called once.
    model(np.zeros((1, *INPUT_SHAPE), dtype=np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / ONNX_FILE
        model.export(str(tmp_path), format="onnx", verbose=False)
        if not tmp_path.is_file():
            raise ModelArtifactError(f"ONNX export did not write {tmp_path}")
        shutil.copyfile(tmp_path, path)
    return path


def artifact_keras(artifact: Path) -> Path:
    """The float32 Keras model of ``artifact``, which must be there to build on it."""
    path = artifact / KERAS_FILE
    if not path.is_file():
        raise ModelArtifactError(f"{path}: no such file in the model artifact")
    return path


def write_served_model(model: Any, out: Path, calibration: Split | None) -> str:
    """Save ``model`` as ``model.keras`` and ``model.onnx`` in ``out``; returns the ONNX precision.

    With ``calibration`` (Training images) the ONNX model is quantized to
    int8, which served the default network 1.6 times as fast on an AVX2 CPU
    for 0.3 points of PublicTest accuracy (docs/benchmarks.md).
    """
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / KERAS_FILE)
    if calibration is None:
        export_onnx(model, out / ONNX_FILE)
        return "float32"
    with tempfile.TemporaryDirectory() as tmp:
        float_onnx = export_onnx(model, Path(tmp) / ONNX_FILE)
        quantize_onnx(float_onnx, out / ONNX_FILE, calibration_batches(calibration))
    return "int8"


def publish_metadata(out: Path, meta: ModelMetadata, val: Split) -> Path:
    """Write ``meta`` with the artifact's PublicTest metrics, measured through the serving code."""
    from training.evaluate import evaluate

    write_metadata(out, meta)
    result = evaluate(out, val, "PublicTest")
    meta.metrics["public_test"] = result.as_dict()
    write_metadata(out, meta)
    log.info("PublicTest accuracy %.4f (tta=%s, %s)", result.accuracy, meta.tta, meta.precision)
    found = calibrate_artifact(out, val)
    log.info(
        "uncertain under %.2f: %.1f%% of PublicTest keep a label, %.1f%% of them right",
        found.below,
        100 * found.coverage,
        100 * found.labelled_accuracy,
    )
    return out


def export_artifact(
    *,
    best_keras: Path,
    arch: str,
    out: Path,
    val: Split,
    data_sha256: str,
    epochs: int,
    tta: str,
    calibration: Split | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the artifact folder ``out`` from a checkpoint; returns ``out``."""
    import keras

    from training.models import make_model

    keras.mixed_precision.set_global_policy("float32")
    trained = keras.models.load_model(best_keras, compile=False)
    # Rebuilt in float32 so the ONNX graph has no bfloat16 ops (weights are
    # float32 variables under mixed precision, so they copy over exactly).
    model = make_model(arch)
    model.set_weights(trained.get_weights())
    precision = write_served_model(model, out, calibration)

    created = dt.datetime.now(dt.UTC)
    meta = ModelMetadata(
        version=f"{arch}-{created:%Y%m%d-%H%M%S}",
        architecture=arch,
        labels=list(LABELS),
        input_shape=list(INPUT_SHAPE),
        preprocessing=PREPROCESSING_VERSION,
        training_data_sha256=data_sha256,
        epochs=epochs,
        tta=tta,
        precision=precision,
        parameters=int(model.count_params()),
        created_at=created.isoformat(timespec="seconds"),
        metrics=dict(extra or {}),
    )
    return publish_metadata(out, meta, val)


def quantize_artifact(src: Path, out: Path, train: Split, val: Split) -> Path:
    """Write an int8 copy of the float32 artifact ``src`` to ``out``; returns ``out``.

    ``model.keras`` is saved again unchanged, ``model.onnx`` is quantized with
    ``train``'s images as calibration, and the PublicTest metrics are measured
    again through the int8 model.
    """
    import keras

    if out.resolve() == src.resolve():
        raise ModelArtifactError(f"{out}: choose another folder than the float32 artifact's")
    meta = read_metadata(src)
    if meta.precision != "float32":
        raise ModelArtifactError(f"{src}: its ONNX model is already {meta.precision}")
    keras_path = artifact_keras(src)
    keras.mixed_precision.set_global_policy("float32")
    model = keras.models.load_model(keras_path, compile=False)
    precision = write_served_model(model, out, train)
    # Measured again on the int8 model.
    metrics = {k: v for k, v in meta.metrics.items() if k not in ("public_test", "uncertain")}
    int8 = replace(meta, version=f"{meta.version}-int8", precision=precision, metrics=metrics)
    return publish_metadata(out, int8, val)
