"""The serving side refuses model artifacts that do not match the code."""

import json
import shutil

import pytest

from shared.errors import ModelArtifactError
from shared.labels import LABELS
from shared.settings import DEFAULT_MODEL_DIR
from shared.vision.artifact import METADATA_FILE, read_metadata
from shared.vision.classify import ExpressionClassifier


@pytest.fixture
def artifact(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, copy)
    return copy


def _edit(artifact, **changes):
    path = artifact / METADATA_FILE
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


def test_shipped_default_model_loads():
    meta = read_metadata(DEFAULT_MODEL_DIR)
    assert meta.labels == list(LABELS)
    assert ExpressionClassifier(DEFAULT_MODEL_DIR).version == meta.version


def test_reordered_labels_are_refused(artifact):
    _edit(artifact, labels=list(reversed(LABELS)))
    with pytest.raises(ModelArtifactError, match="labels"):
        ExpressionClassifier(artifact)


def test_other_preprocessing_is_refused(artifact):
    _edit(artifact, preprocessing="rgb64-v0")
    with pytest.raises(ModelArtifactError, match="preprocessing 'rgb64-v0'"):
        read_metadata(artifact)


def test_other_input_shape_is_refused(artifact):
    _edit(artifact, input_shape=[64, 64, 1])
    with pytest.raises(ModelArtifactError, match="input shape"):
        read_metadata(artifact)


def test_missing_metadata_is_named(artifact):
    (artifact / METADATA_FILE).unlink()
    with pytest.raises(ModelArtifactError, match="metadata.json: no such file"):
        ExpressionClassifier(artifact)


def test_unreadable_metadata_is_refused(artifact):
    (artifact / METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelArtifactError, match="unreadable model metadata"):
        read_metadata(artifact)


def test_missing_onnx_model_is_named(artifact):
    (artifact / "model.onnx").unlink()
    with pytest.raises(ModelArtifactError, match="model.onnx: no such file"):
        ExpressionClassifier(artifact)


def test_unknown_onnx_precision_is_refused(artifact):
    _edit(artifact, precision="int4")
    with pytest.raises(ModelArtifactError, match="precision 'int4'"):
        read_metadata(artifact)
