"""One artifact that serves the mean probabilities of several trained models.

The members' Keras models are wired side by side into one graph, so the
ensemble exports to a single ONNX model and the worker, ``evaluate`` and the
benchmarks serve it like any other artifact.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from shared.errors import ModelArtifactError
from shared.labels import LABELS
from shared.vision.artifact import ModelMetadata, read_metadata
from shared.vision.preprocess import INPUT_SHAPE, PREPROCESSING_VERSION
from training.data import Split, data_hash
from training.export import artifact_keras, publish_metadata, write_served_model

log = logging.getLogger("classpulse.ensemble")


def average_models(models: list[Any]) -> Any:
    """A Keras model whose output is the mean of ``models``' probabilities."""
    import keras

    inputs = keras.Input(shape=INPUT_SHAPE, name="pixels")
    outputs = []
    for index, model in enumerate(models):
        model.name = f"member_{index}"  # layer names must be unique in one graph
        outputs.append(model(inputs))
    mean = keras.layers.Average(name="probabilities")(outputs)
    return keras.Model(inputs, mean, name="ensemble")


def build_ensemble(
    members: list[Path],
    out: Path,
    train: Split,
    val: Split,
    *,
    tta: str = "flip",
    quantize: bool = True,
) -> Path:
    """Write an ensemble artifact of the member artifacts to ``out``; returns ``out``.

    Every member must have been trained and selected on exactly ``train`` and
    ``val``: a member that saw other data would make the PublicTest figures
    of the ensemble meaningless.
    """
    import keras

    if len(members) < 2:
        raise ModelArtifactError("an ensemble needs at least two member artifacts")
    expected = data_hash(train, val)
    metas = [read_metadata(member) for member in members]
    for member, meta in zip(members, metas, strict=True):
        if meta.training_data_sha256 != expected:
            raise ModelArtifactError(
                f"{member}: trained on other data than {train.source} "
                f"(training data hash {meta.training_data_sha256[:12]}…, expected {expected[:12]}…)"
            )
    keras_paths = [artifact_keras(member) for member in members]

    keras.mixed_precision.set_global_policy("float32")
    model = average_models([keras.models.load_model(path, compile=False) for path in keras_paths])
    precision = write_served_model(model, out, train if quantize else None)
    created = dt.datetime.now(dt.UTC)
    meta = ModelMetadata(
        version=f"ensemble-{created:%Y%m%d-%H%M%S}",
        architecture="ensemble of " + " + ".join(m.architecture for m in metas),
        labels=list(LABELS),
        input_shape=list(INPUT_SHAPE),
        preprocessing=PREPROCESSING_VERSION,
        training_data_sha256=expected,
        epochs=max(m.epochs for m in metas),
        tta=tta,
        precision=precision,
        parameters=int(model.count_params()),
        created_at=created.isoformat(timespec="seconds"),
        metrics={
            "members": [
                {
                    "version": m.version,
                    "architecture": m.architecture,
                    "epochs": m.epochs,
                    "public_test_accuracy": m.metrics.get("public_test", {}).get("accuracy"),
                }
                for m in metas
            ]
        },
    )
    log.info("ensemble of %s", ", ".join(m.version for m in metas))
    return publish_metadata(out, meta, val)
