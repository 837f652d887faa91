"""GPU training bundle and weights: lossless data, weights that load into the Keras builders."""

import json
from pathlib import Path

import numpy as np
import pytest

from shared.errors import ModelArtifactError
from training.accelerator import (
    PART_BYTES,
    base_targets,
    decode_pixels,
    encode_pixels,
    init_params,
    load_weights,
    save_weights,
)
from training.data import load_csv
from training.from_accelerator import keras_model

from ..conftest import FIXTURES


@pytest.fixture(scope="module")
def sample():
    return load_csv(FIXTURES / "fer2013-sample.csv", "Training")


def test_pixel_bundle_is_lossless(sample):
    blob = encode_pixels(sample.images)
    assert np.array_equal(decode_pixels(blob), sample.images)
    assert len(blob) < sample.images.nbytes


def test_ferplus_votes_soften_only_rows_that_have_them():
    labels = np.array([3, 0])
    votes = np.array([[0, 0, 0, 8, 0, 2, 0], [0] * 7], dtype=np.float32)
    targets = base_targets(labels, votes, 0.3)
    assert targets[0] == pytest.approx([0, 0, 0, 0.7 + 0.3 * 0.8, 0, 0.3 * 0.2, 0])
    assert targets[1] == pytest.approx(np.eye(7)[0])


def test_large_weights_travel_in_parts_and_load_whole(tmp_path):
    params = init_params("resnet18", seed=0)
    path = tmp_path / "resnet18.npz"
    save_weights(path, "resnet18", params)
    parts = sorted(tmp_path.glob("resnet18.npz.part*"))
    assert not path.exists()
    assert len(parts) == 2
    assert all(p.stat().st_size <= PART_BYTES for p in parts)
    arch, loaded = load_weights(path)
    assert arch == "resnet18"
    assert np.allclose(loaded[0]["kernel"], params[0]["kernel"], atol=1e-3)


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "w.npz"
    save_weights(path, "vgg_bn_40", init_params("vgg_bn", seed=0))
    with pytest.raises(ModelArtifactError, match="vgg_bn_40"):
        keras_model(path)


def test_committed_checkpoint_serves_what_the_gpu_network_computed(sample):
    """Keras, loaded from a GPU checkpoint, gives the probabilities JAX's network gave.

    The reference was computed by ``training.accelerator.forward`` (float32) on the
    same weights: a layer loaded in the wrong place would change every row.
    """
    reference = json.loads((FIXTURES / "accelerator-student40-probabilities.json").read_text())
    model = keras_model(Path(__file__).resolve().parents[2] / reference["weights"])
    images = sample.images[:16, :, :, np.newaxis].astype(np.float32)
    probabilities = model.predict(images, verbose=0)
    assert probabilities == pytest.approx(np.array(reference["probabilities"]), abs=1e-4)


def test_loading_gpu_weights_keeps_the_callers_precision():
    import keras

    reference = json.loads((FIXTURES / "accelerator-student40-probabilities.json").read_text())
    keras.mixed_precision.set_global_policy("mixed_bfloat16")  # a run on an AMX CPU
    try:
        model = keras_model(Path(__file__).resolve().parents[2] / reference["weights"])
        assert model.dtype_policy.name == "float32"
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_import_weights_command_writes_a_scored_artifact(tmp_path):
    from typer.testing import CliRunner

    from classpulse.cli import app
    from shared.vision.classify import ExpressionClassifier

    weights = tmp_path / "student.npz"
    save_weights(weights, "vgg_bn", init_params("vgg_bn", seed=3))
    (tmp_path / "student.history.json").write_text(json.dumps([{"epoch": 1}, {"epoch": 2}]))
    out = tmp_path / "artifact"
    sample = str(FIXTURES / "fer2013-sample.csv")
    runner = CliRunner()
    result = runner.invoke(
        app, ["import-weights", str(weights), "--out", str(out), "--data", sample, "--no-quantize"]
    )
    assert result.exit_code == 0, result.output
    meta = ExpressionClassifier(out).metadata
    assert (meta.architecture, meta.epochs, meta.precision) == ("vgg_bn", 2, "float32")
    assert f"{meta.version} (float32, tta=flip): PublicTest" in result.output

    missing = runner.invoke(
        app, ["import-weights", str(tmp_path / "none.npz"), "--out", str(out), "--data", sample]
    )
    assert missing.exit_code == 2
    assert "none.npz" in missing.output
