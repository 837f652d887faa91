"""Post-training int8 quantization keeps the served model's answers."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from shared.settings import FAST_MODEL_DIR  # noqa: E402
from training.data import load_csv  # noqa: E402
from training.quantize import calibration_batches, quantize_onnx  # noqa: E402

from ..conftest import FIXTURES  # noqa: E402

SAMPLE = FIXTURES / "fer2013-sample.csv"


def _probabilities(onnx_path, images):
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batch = images[..., np.newaxis].astype(np.float32)
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def test_calibration_takes_the_images_and_their_mirror_images():
    split = load_csv(SAMPLE, "Training")
    batches = calibration_batches(split, n=10)
    images = np.concatenate(batches)[..., 0]
    assert images.shape == (20, 48, 48)
    np.testing.assert_array_equal(images[10:], images[:10, :, ::-1])
    chosen = {image.tobytes() for image in images[:10]}
    assert chosen <= {image.astype(np.float32).tobytes() for image in split.images}
    assert len(chosen) == 10


def test_int8_model_is_smaller_and_labels_like_the_float_model(tmp_path):
    import keras

    from training.export import export_onnx

    float_onnx = export_onnx(
        keras.models.load_model(FAST_MODEL_DIR / "model.keras", compile=False),
        tmp_path / "float.onnx",
    )
    calibration = calibration_batches(load_csv(SAMPLE, "Training"))
    int8_onnx = quantize_onnx(float_onnx, tmp_path / "int8.onnx", calibration)

    faces = load_csv(SAMPLE, "PublicTest").images
    exact, quantized = _probabilities(float_onnx, faces), _probabilities(int8_onnx, faces)
    assert int8_onnx.stat().st_size < 0.4 * float_onnx.stat().st_size
    assert (exact.argmax(axis=1) == quantized.argmax(axis=1)).mean() >= 0.9
    np.testing.assert_allclose(quantized.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(exact - quantized).max() < 0.2
    assert not np.allclose(exact, quantized, atol=1e-6)  # it really is another model
