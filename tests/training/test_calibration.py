"""Expected calibration error and FER+ majority labels."""

import numpy as np
import pytest

from training.calibration import expected_calibration_error, ferplus_accuracy, ferplus_majority


def _probs(top: float, winners: list[int]) -> np.ndarray:
    rest = (1 - top) / 6
    probs = np.full((len(winners), 7), rest)
    probs[np.arange(len(winners)), winners] = top
    return probs


def test_confidence_that_matches_accuracy_has_no_calibration_error():
    # 80 % confident everywhere and right on 8 of 10 images.
    probs = _probs(0.8, [0] * 10)
    labels = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-9)


def test_overconfidence_is_the_gap_between_confidence_and_accuracy():
    # 90 % confident, right half the time.
    probs = _probs(0.9, [0] * 10)
    labels = np.array([0] * 5 + [1] * 5)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)


def test_ferplus_majority_leaves_out_ties_and_images_without_votes():
    votes = np.array(
        [[0, 0, 0, 9, 0, 1, 0], [0, 0, 0, 5, 0, 5, 0], [0] * 7, [6, 0, 0, 0, 4, 0, 0]],
        dtype=np.float32,
    )
    assert ferplus_majority(votes).tolist() == [3, -1, -1, 0]
    accuracy, counted = ferplus_accuracy(_probs(0.5, [3, 3, 3, 4]), votes)
    assert counted == 2
    assert accuracy == pytest.approx(0.5)
