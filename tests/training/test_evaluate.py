import numpy as np
import pytest

from training.evaluate import format_report, metrics


def test_metrics_on_known_predictions():
    labels = np.array([0, 0, 3, 3, 3, 6])
    predicted = np.array([0, 3, 3, 3, 6, 6])
    result = metrics(labels, predicted, "PublicTest", "v1")
    assert result.accuracy == pytest.approx(4 / 6)
    assert result.per_class_recall["angry"] == pytest.approx(0.5)
    assert result.per_class_recall["happy"] == pytest.approx(2 / 3)
    assert result.per_class_recall["neutral"] == 1.0
    # Classes absent from the split do not drag the macro recall down.
    assert result.macro_recall == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert result.confusion[3] == [0, 0, 0, 2, 0, 0, 1]
    assert "accuracy      0.6667" in format_report(result)
