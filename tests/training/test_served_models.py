"""The shipped model artifacts and how they are served: zoom and flip TTA for unsure faces."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from shared.errors import ModelArtifactError
from shared.settings import DEFAULT_MODEL_DIR, FAST_MODEL_DIR
from shared.vision.artifact import METADATA_FILE, read_metadata
from shared.vision.classify import ExpressionClassifier
from shared.vision.preprocess import zoom_inputs
from training.data import load_csv
from training.evaluate import split_probabilities
from training.serving_tune import ZOOMS, flip_where_unsure

from ..conftest import FIXTURES

SAMPLE = FIXTURES / "fer2013-sample.csv"


@pytest.fixture(scope="module")
def sample():
    return load_csv(SAMPLE, "Training")


def _served_as(tmp_path: Path, source: Path, **changes: object) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(source, copy)
    path = copy / METADATA_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return copy


def _inputs(split) -> np.ndarray:
    return split.images[..., np.newaxis].astype(np.float32)


def test_the_default_serves_the_large_network_zoomed_with_flip_for_unsure_faces(sample):
    classifier = ExpressionClassifier(DEFAULT_MODEL_DIR)
    meta = classifier.metadata
    assert (meta.architecture, meta.precision, meta.tta) == ("vgg_bn_64", "int8", "flip")
    assert meta.zoom in ZOOMS
    assert meta.zoom > 1.0
    assert meta.tta_below is not None
    assert 0.0 < meta.tta_below < 1.0
    assert meta.version.endswith(f"-zoom{meta.zoom:g}-flipbelow{meta.tta_below:g}")
    assert meta.serving == f"zoom{meta.zoom:g} flip<{meta.tta_below:g} int8"
    assert read_metadata(FAST_MODEL_DIR).serving == "flip int8"
    # Faces under the calibrated threshold are reported uncertain; models/fast labels all.
    assert meta.uncertain_below == meta.metrics["uncertain"]["below"]
    assert 0.0 < meta.uncertain_below < 1.0
    assert read_metadata(FAST_MODEL_DIR).uncertain_below == 0.0
    probabilities = split_probabilities(classifier, sample)
    assert probabilities.shape == (len(sample), 7)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)


def test_the_default_labels_real_faces_at_least_as_well_as_the_fast_model(sample):
    def accuracy(model_dir: Path) -> float:
        probabilities = split_probabilities(ExpressionClassifier(model_dir), sample)
        return float((probabilities.argmax(axis=1) == sample.labels).mean())

    assert read_metadata(FAST_MODEL_DIR).architecture == "vgg_bn"
    assert accuracy(DEFAULT_MODEL_DIR) >= accuracy(FAST_MODEL_DIR)


def test_only_unsure_faces_are_averaged_with_their_mirror_image(tmp_path, sample):
    served = ExpressionClassifier(_served_as(tmp_path, FAST_MODEL_DIR, zoom=1.1, tta_below=0.7))
    batch = _inputs(sample)
    zoomed = zoom_inputs(batch, 1.1)
    plain = served.forward(zoomed)
    mirrored = served.forward(np.ascontiguousarray(zoomed[:, :, ::-1, :]))
    unsure = plain.max(axis=1) < 0.7
    assert 0 < unsure.sum() < len(batch)  # the sample has both kinds

    probabilities = served.predict_batch(batch)
    np.testing.assert_allclose(probabilities[~unsure], plain[~unsure], atol=1e-6)
    np.testing.assert_allclose(probabilities[unsure], (plain + mirrored)[unsure] / 2, atol=1e-6)
    # What the tuner reckons with is what the classifier serves.
    np.testing.assert_allclose(probabilities, flip_where_unsure(plain, mirrored, 0.7), atol=1e-6)


def test_zoom_magnifies_about_the_centre():
    crop = np.zeros((1, 48, 48, 1), dtype=np.float32)
    crop[0, 20:28, 20:28, 0] = 255.0  # an 8-pixel square in the middle
    assert zoom_inputs(crop, 1.0) is crop
    zoomed = zoom_inputs(crop, 1.5)
    assert zoomed.shape == crop.shape
    assert zoomed.dtype == np.float32
    bright = np.argwhere(zoomed[0, :, :, 0] > 127)
    assert bright.min(axis=0).tolist() == [18, 18]
    assert bright.max(axis=0).tolist() == [29, 29]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"zoom": 3.0}, "zoom 3.0"),
        ({"zoom": 0.5}, "zoom 0.5"),
        ({"tta_below": 0.0}, "tta_below 0.0"),
    ],
)
def test_out_of_range_serving_is_refused(tmp_path, changes, message):
    with pytest.raises(ModelArtifactError, match=message):
        read_metadata(_served_as(tmp_path, FAST_MODEL_DIR, **changes))


def test_tune_serving_records_its_choice_and_applies_it_under_a_new_version(tmp_path):
    from typer.testing import CliRunner

    from classpulse.cli import app

    model = _served_as(tmp_path, FAST_MODEL_DIR)
    before = read_metadata(model)
    looked = CliRunner().invoke(app, ["tune-serving", "--model", str(model), "--data", str(SAMPLE)])
    assert looked.exit_code == 0, looked.output
    assert "--apply serves it" in looked.output
    meta = read_metadata(model)
    choice = meta.metrics["serving"]
    assert (meta.version, meta.zoom, meta.tta_below) == (before.version, 1.0, None)
    assert set(choice["by_zoom"]) == {f"{zoom:g}" for zoom in ZOOMS}
    assert choice["accuracy"] >= choice["every_face_flipped"]
    assert 1.0 <= choice["passes_per_face"] <= 2.0

    for _ in range(2):  # applying twice names the serving once
        applied = CliRunner().invoke(
            app, ["tune-serving", "--model", str(model), "--data", str(SAMPLE), "--apply"]
        )
        assert applied.exit_code == 0, applied.output
    meta = read_metadata(model)
    assert (meta.zoom, meta.tta_below) == (choice["zoom"], choice["tta_below"])
    suffix = f"-zoom{meta.zoom:g}" + (
        "" if meta.tta_below is None else f"-flipbelow{meta.tta_below:g}"
    )
    assert meta.version == before.version + suffix
    public = load_csv(SAMPLE, "PublicTest")
    served = split_probabilities(ExpressionClassifier(model), public)
    accuracy = float((served.argmax(axis=1) == public.labels).mean())
    assert meta.metrics["public_test"]["accuracy"] == pytest.approx(accuracy)
    assert meta.metrics["public_test"]["model_version"] == meta.version


def test_tune_serving_names_a_folder_that_is_no_model(tmp_path):
    from typer.testing import CliRunner

    from classpulse.cli import app

    result = CliRunner().invoke(
        app, ["tune-serving", "--model", str(tmp_path), "--data", str(SAMPLE)]
    )
    assert result.exit_code == 2
    assert "no such file; is" in result.output
