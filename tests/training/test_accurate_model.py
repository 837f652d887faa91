"""The "accurate" model artifact that CLASSPULSE_MODEL_DIR may select instead of the default."""

from pathlib import Path

import numpy as np
import pytest

from shared.settings import DEFAULT_MODEL_DIR
from shared.vision.classify import ExpressionClassifier
from training.data import load_csv
from training.evaluate import split_probabilities

from ..conftest import FIXTURES

ACCURATE_MODEL_DIR = Path(DEFAULT_MODEL_DIR).parent / "accurate"


@pytest.fixture(scope="module")
def sample():
    return load_csv(FIXTURES / "fer2013-sample.csv", "Training")


def test_accurate_model_serves_int8_with_flip(sample):
    classifier = ExpressionClassifier(ACCURATE_MODEL_DIR)
    meta = classifier.metadata
    assert (meta.architecture, meta.precision, meta.tta) == ("vgg_bn_64", "int8", "flip")
    probabilities = split_probabilities(classifier, sample)
    assert probabilities.shape == (len(sample), 7)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)


def test_accurate_model_labels_real_faces_at_least_as_well_as_the_default(sample):
    def accuracy(model_dir: Path) -> float:
        probabilities = split_probabilities(ExpressionClassifier(model_dir), sample)
        return float((probabilities.argmax(axis=1) == sample.labels).mean())

    assert accuracy(ACCURATE_MODEL_DIR) >= accuracy(DEFAULT_MODEL_DIR)
